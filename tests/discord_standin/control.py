"""The stand-in's control API, for a bench or test that runs it in another process.

Under `/_control/` on the stand-in's own port (JSON in, JSON out):

- `GET  /_control/info`: the token, `api_base_url`, the gateway, shards and connected shards;
- `POST /_control/guilds` `{"name", "shard"?, "members"?}`: a new server, with its channel
  and members' ids;
- `POST /_control/slash` `{"guild_id", "user_id", "name", "options"}`: a member runs a
  command; answers the interaction's id;
- `POST /_control/press` `{"message_id", "custom_id", "user_id"}`: a member presses a button;
- `GET  /_control/interactions/{id}`: how the bot answered it (callback types, the original
  message's id);
- `GET  /_control/record`: every message and operation so far, and the unknown routes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.discord_standin.server import DiscordStandIn, Guild, Message, User


def add_control(standin: DiscordStandIn) -> None:
    routes = web.RouteTableDef()

    def member(guild: Guild, user_id: int) -> User:
        for user in guild.members:
            if user.id == user_id:
                return user
        raise web.HTTPNotFound(text=f"no member {user_id} in guild {guild.id}")

    def guild_of(guild_id: int) -> Guild:
        guild = standin.guilds.get(guild_id)
        if guild is None:
            raise web.HTTPNotFound(text=f"no guild {guild_id}")
        return guild

    @routes.get("/_control/info")
    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "token": standin.token,
                "api_base_url": standin.api_base_url,
                "gateway_url": standin.gateway_url,
                "shards": standin.shards,
                "connected_shards": sorted(standin.connected_shards()),
                "commands": sorted(standin.commands),
            }
        )

    @routes.post("/_control/guilds")
    async def add_guild(request: web.Request) -> web.Response:
        body = await request.json()
        guild = standin.add_guild(
            str(body["name"]), shard=body.get("shard"), members=int(body.get("members", 1))
        )
        return web.json_response(
            {
                "id": str(guild.id),
                "channel_id": str(guild.channel.id),
                "members": [str(user.id) for user in guild.members],
                "shard": standin.shard_of(guild.id),
            }
        )

    @routes.post("/_control/slash")
    async def slash(request: web.Request) -> web.Response:
        body = await request.json()
        guild = guild_of(int(body["guild_id"]))
        options: dict[str, Any] = body.get("options") or {}
        interaction = await standin.slash(
            guild, member(guild, int(body["user_id"])), str(body["name"]), **options
        )
        return web.json_response({"interaction_id": str(interaction.id)})

    @routes.post("/_control/press")
    async def press(request: web.Request) -> web.Response:
        body = await request.json()
        message = standin.messages.get(int(body["message_id"]))
        if message is None:
            raise web.HTTPNotFound(text="no such message")
        guild = guild_of(standin.channels[message.channel_id].guild_id)
        interaction = await standin.press(
            message, str(body["custom_id"]), member(guild, int(body["user_id"]))
        )
        return web.json_response({"interaction_id": str(interaction.id)})

    @routes.get("/_control/interactions/{id}")
    async def interaction(request: web.Request) -> web.Response:
        found = standin.interactions.get(int(request.match_info["id"]))
        if found is None:
            raise web.HTTPNotFound(text="no such interaction")
        return web.json_response(
            {
                "responses": found.responses,
                "original_id": str(found.original.id) if found.original else None,
            }
        )

    @routes.get("/_control/record")
    async def record(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "messages": [_message(m) for m in standin.messages.values()],
                "operations": [
                    {
                        "kind": op.kind,
                        "message_id": str(op.message.id),
                        "files": op.files,
                        "via": op.via,
                        "at": op.at,
                    }
                    for op in standin.operations
                ],
                "unknown_routes": standin.unknown_routes,
            }
        )

    standin.app.add_routes(routes)


def _message(message: Message) -> dict[str, Any]:
    return {
        "id": str(message.id),
        "channel_id": str(message.channel_id),
        "content": message.content,
        "embeds": message.embeds,
        "attachments": [a["filename"] for a in message.attachments],
        "custom_ids": message.custom_ids,
        "deleted": message.deleted,
    }
