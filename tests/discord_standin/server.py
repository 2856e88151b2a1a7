"""A Discord stand-in on loopback: REST v10 and Gateway v10 for real discord.py clients.

Real, unmodified bot processes log in to it, fetch `/gateway/bot`, open one gateway socket a
shard and receive READY, GUILD_CREATE (each guild on its shard: `(guild_id >> 22) %
shard_count`) and INTERACTION_CREATE; they answer through the REST routes a bot uses. Every
message created or edited and every interaction response is recorded, so tests assert on
what members saw. Frames are plain JSON text, which discord.py reads whatever `compress` it
asked for. A route the stand-in does not know answers 404 and is logged, so a new call the
bot makes shows up at once.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

log = logging.getLogger(__name__)

DISCORD_EPOCH_MS = 1_420_070_400_000
#: Every permission bit Discord knows today: the bot may do anything in the stand-in's channels.
ALL_PERMISSIONS = str((1 << 51) - 1)
HEARTBEAT_INTERVAL_MS = 41_250

Json = dict[str, Any]


def iso(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, UTC).isoformat()


class Snowflakes:
    """Ids that carry the current time (discord.py reads `created_at` from them)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)

    def on_shard(self, shard: int, count: int) -> int:
        """An id whose shard, of `count`, is `shard`."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        ms += (shard - ms) % count
        return (ms << 22) | (next(self._counter) & 0x3FFFFF)


@dataclass
class User:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> Json:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
        }


@dataclass
class Channel:
    id: int
    guild_id: int
    name: str
    nsfw: bool = False

    def payload(self) -> Json:
        return {
            "id": str(self.id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": 0,
            "permission_overwrites": [],
            "nsfw": self.nsfw,
            "parent_id": None,
            "topic": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }


@dataclass
class Guild:
    id: int
    name: str
    channels: list[Channel] = field(default_factory=list)
    members: list[User] = field(default_factory=list)

    @property
    def channel(self) -> Channel:
        return self.channels[0]


@dataclass
class Message:
    """A message as members see it now, with every version it went through."""

    id: int
    channel_id: int
    author: User
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[Json] = field(default_factory=list)
    flags: int = 0
    #: The interaction this message answers (its original response or a follow-up).
    interaction_id: int | None = None
    application_id: int | None = None
    created_at: float = field(default_factory=time.time)
    edited_at: float | None = None
    deleted: bool = False
    versions: list[Json] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)

    @property
    def footers(self) -> list[str]:
        return [str((e.get("footer") or {}).get("text", "")) for e in self.embeds]

    @property
    def custom_ids(self) -> list[str]:
        return [
            str(c.get("custom_id"))
            for row in self.components
            for c in row.get("components", [])
            if c.get("custom_id")
        ]

    def payload(self, guild_id: int | None) -> Json:
        data: Json = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at else None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self.attachments,
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": 20 if self.interaction_id else 0,
            "flags": self.flags,
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
            data["webhook_id"] = str(self.application_id)
        return data


@dataclass
class Operation:
    """One thing the bot did that members see: a message created, edited or deleted."""

    kind: str  # "create", "edit", "delete"
    message: Message
    #: Files uploaded with this operation (their names).
    files: list[str]
    #: Through which door: "channel", "webhook" or "callback".
    via: str
    #: When it happened (unix seconds).
    at: float = field(default_factory=time.time)


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    guild: Guild
    channel: Channel
    user: User
    data: Json
    shard: int
    #: The callback types the bot answered with, in order (Discord takes exactly one).
    responses: list[int] = field(default_factory=list)
    #: Autocomplete choices, when it was an autocomplete.
    choices: list[Json] | None = None
    #: The form the bot answered with (callback type 9), to `submit`.
    modal: Json | None = None
    original: Message | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    created: float = field(default_factory=time.monotonic)
    #: Seconds from the dispatch to the bot's first callback (Discord allows 3).
    acked_after: float | None = None


class HTTPError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Session:
    id: str
    shard: tuple[int, int]
    ws: web.WebSocketResponse | None
    sequence: int = 0


Handler = Callable[[web.Request, "dict[str, str]"], Awaitable[web.StreamResponse]]


class DiscordStandIn:
    """Start with `start()` (or `async with`); `api_base_url` is what the bot's
    `discord.api_base_url` takes. The bot's token is `token`."""

    def __init__(
        self,
        *,
        shards: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        ack_deadline: float | None = None,
    ) -> None:
        self.ids = Snowflakes()
        #: Refuse callbacks later than this many seconds, as Discord does after 3 (None:
        #: accept them; a loaded test machine would otherwise fail on its own slowness).
        self.ack_deadline = ack_deadline
        self.shards = shards
        self.bot = User(self.ids.next(), "wirobot", bot=True)
        self.application_id = self.bot.id
        first = base64.b64encode(str(self.bot.id).encode()).decode().rstrip("=")
        self.token = f"{first}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.operations: list[Operation] = []
        self.interactions: dict[int, Interaction] = {}
        self._by_token: dict[str, Interaction] = {}
        #: Commands as the bot last synced them, by name (global and per guild alike).
        self.commands: dict[str, Json] = {}
        self.unknown_routes: list[str] = []
        self.sessions: dict[str, Session] = {}
        #: Open sockets by shard id (the newest identified session of each shard).
        self._shard_sessions: dict[int, Session] = {}
        self._changed = asyncio.Condition()
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self._routes = self._route_table()
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/gateway", self._gateway)
        self.app.router.add_route("*", "/api/v10/{path:.*}", self._rest)

    # -- running -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            if session.ws is not None and not session.ws.closed:
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> DiscordStandIn:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self._host}:{self._port}/gateway"

    # -- the world -----------------------------------------------------------------------------

    def shard_of(self, guild_id: int) -> int:
        return (guild_id >> 22) % self.shards

    def add_guild(self, name: str, *, shard: int | None = None, members: int = 1) -> Guild:
        """A server with one text channel and `members` members (besides the bot), on
        `shard` (any when None). Sessions already identified for its shard hear of it."""
        guild_id = self.ids.next() if shard is None else self.ids.on_shard(shard, self.shards)
        guild = Guild(guild_id, name)
        channel = Channel(self.ids.next(), guild_id, "general")
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        for n in range(members):
            guild.members.append(User(self.ids.next(), f"{name}-member-{n + 1}"))
        self.guilds[guild_id] = guild
        session = self._shard_sessions.get(self.shard_of(guild_id))
        if session is not None:
            asyncio.get_running_loop().create_task(
                self._dispatch(session, "GUILD_CREATE", self._guild_payload(guild))
            )
        return guild

    def connected_shards(self) -> set[int]:
        return {
            shard
            for shard, s in self._shard_sessions.items()
            if s.ws is not None and not s.ws.closed
        }

    async def wait_for(self, check: Callable[[], bool], within: float = 30.0) -> None:
        """Until `check()` holds: looked at whenever the stand-in's record changes."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(check)

    async def _note_change(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- what members do -----------------------------------------------------------------------

    async def slash(
        self, guild: Guild, user: User, name: str, *, channel: Channel | None = None, **options: Any
    ) -> Interaction:
        """A member runs `/name` with these options (typed as the synced command says)."""
        command = self.commands.get(name)
        if command is None:
            raise AssertionError(f"the bot never synced a command /{name}")
        types = {o["name"]: o["type"] for o in command.get("options", [])}
        data = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": [
                {"name": key, "type": types[key], "value": value}
                for key, value in options.items()
                if value is not None
            ],
        }
        return await self._interact(2, guild, channel or guild.channel, user, data)

    async def autocomplete(
        self, guild: Guild, user: User, name: str, focused: str, typed: str, **options: Any
    ) -> Interaction:
        """A member types `typed` into the option `focused` of `/name` (others as given);
        the bot's choices land in `choices`."""
        command = self.commands.get(name)
        if command is None:
            raise AssertionError(f"the bot never synced a command /{name}")
        types = {o["name"]: o["type"] for o in command.get("options", [])}
        given = [{"name": k, "type": types[k], "value": v} for k, v in options.items()]
        given.append({"name": focused, "type": types[focused], "value": typed, "focused": True})
        data = {"id": command["id"], "name": name, "type": 1, "options": given}
        return await self._interact(4, guild, guild.channel, user, data)

    async def submit(self, shown: Interaction, user: User, values: dict[str, str]) -> Interaction:
        """A member fills in and sends the form the bot showed in answer to `shown`."""
        form = shown.modal
        if form is None:
            raise AssertionError(f"interaction {shown.id} was not answered with a form")

        def answered(field_: Json) -> Json:
            value = values.get(field_["custom_id"], field_.get("value") or "")
            return {"type": 4, "custom_id": field_["custom_id"], "value": value}

        rows: list[Json] = []
        for row in form.get("components", []):
            if row.get("type") == 18:  # a label around one input
                rows.append({"type": 18, "component": answered(row["component"])})
            else:  # an action row of inputs
                inputs = [answered(f) for f in row.get("components", []) if f.get("type") == 4]
                rows.append({"type": 1, "components": inputs})
        data = {"custom_id": form["custom_id"], "components": rows}
        return await self._interact(5, shown.guild, shown.channel, user, data)

    async def press(self, message: Message, custom_id: str, user: User) -> Interaction:
        """A member presses the button `custom_id` on `message`."""
        if custom_id not in message.custom_ids:
            raise AssertionError(f"message {message.id} has no button {custom_id!r}")
        channel = self.channels[message.channel_id]
        guild = self.guilds[channel.guild_id]
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interact(3, guild, channel, user, data, message=message)

    async def _interact(
        self,
        kind: int,
        guild: Guild,
        channel: Channel,
        user: User,
        data: Json,
        *,
        message: Message | None = None,
    ) -> Interaction:
        shard = self.shard_of(guild.id)
        session = self._shard_sessions.get(shard)
        if session is None or session.ws is None or session.ws.closed:
            raise AssertionError(f"no bot process holds shard {shard}")
        interaction = Interaction(
            self.ids.next(),
            "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48),
            kind,
            guild,
            channel,
            user,
            data,
            shard,
        )
        self.interactions[interaction.id] = interaction
        self._by_token[interaction.token] = interaction
        payload: Json = {
            "id": str(interaction.id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "guild_id": str(guild.id),
            "channel_id": str(channel.id),
            "channel": channel.payload(),
            "member": self._member_payload(user),
            "token": interaction.token,
            "version": 1,
            "app_permissions": ALL_PERMISSIONS,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if message is not None:
            payload["message"] = message.payload(guild.id)
        await self._dispatch(session, "INTERACTION_CREATE", payload)
        return interaction

    # -- what the record says ------------------------------------------------------------------

    def channel_messages(self, channel: Channel) -> list[Message]:
        return [m for m in self.messages.values() if m.channel_id == channel.id and not m.deleted]

    def results_of(self, job_id: int) -> list[Operation]:
        """Each time a job's images were put before members (a result posted): operations
        that uploaded files under an embed whose footer names the job."""
        footer = f"Job {job_id}"
        return [
            op
            for op in self.operations
            if op.files and op.kind != "delete" and footer in op.message.footers
        ]

    def messages_of(self, job_id: int) -> list[Message]:
        footer = f"Job {job_id}"
        return [m for m in self.messages.values() if footer in m.footers and not m.deleted]

    # -- the gateway ---------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
        session: Session | None = None
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                message = json.loads(frame.data)
                op, data = message.get("op"), message.get("d")
                if op == 1:
                    await ws.send_json({"op": 11})
                elif op == 2:
                    session = await self._identify(ws, data)
                    if session is None:
                        break
                elif op == 6:
                    session = await self._resume(ws, data)
                elif op in (3, 4, 8):  # presence, voice, member requests: nothing to say
                    continue
                else:
                    log.warning("gateway: unknown op %s", op)
        finally:
            if session is not None and session.ws is ws:
                session.ws = None
            await self._note_change()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> Session | None:
        if data.get("token") not in (self.token, f"Bot {self.token}"):
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        shard_id, count = data.get("shard") or [0, 1]
        if count != self.shards:
            await ws.close(code=4011, message=b"Sharding required.")
            return None
        session = Session(secrets.token_hex(16), (shard_id, count), ws)
        self.sessions[session.id] = session
        self._shard_sessions[shard_id] = session
        guilds = [g for g in self.guilds.values() if self.shard_of(g.id) == shard_id]
        await self._dispatch(
            session,
            "READY",
            {
                "v": 10,
                "user": self.bot.payload(),
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.id,
                "resume_gateway_url": self.gateway_url,
                "shard": [shard_id, count],
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        for guild in guilds:
            await self._dispatch(session, "GUILD_CREATE", self._guild_payload(guild))
        await self._note_change()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> Session | None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") not in (self.token, f"Bot {self.token}"):
            await ws.send_json({"op": 9, "d": False})  # not resumable: identify again
            return None
        session.ws = ws
        self._shard_sessions[session.shard[0]] = session
        await self._dispatch(session, "RESUMED", {})
        await self._note_change()
        return session

    async def _dispatch(self, session: Session, event: str, data: Json) -> None:
        if session.ws is None or session.ws.closed:
            return
        session.sequence += 1
        await session.ws.send_json({"op": 0, "t": event, "s": session.sequence, "d": data})

    def _guild_payload(self, guild: Guild) -> Json:
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "owner_id": str(guild.members[0].id if guild.members else self.bot.id),
            "roles": [
                {
                    "id": str(guild.id),
                    "name": "@everyone",
                    "permissions": "3213312",  # view, send, embed, attach, history...
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "channels": [c.payload() for c in guild.channels],
            "threads": [],
            "members": [self._member_payload(self.bot)],
            "member_count": len(guild.members) + 1,
            "emojis": [],
            "stickers": [],
            "features": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "large": False,
            "unavailable": False,
            "joined_at": iso(),
            "premium_tier": 0,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "system_channel_flags": 0,
            "preferred_locale": "en-US",
        }

    def _member_payload(self, user: User) -> Json:
        return {
            "user": user.payload(),
            "roles": [],
            "joined_at": iso(),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "avatar": None,
            "permissions": ALL_PERMISSIONS,
        }

    # -- REST ----------------------------------------------------------------------------------

    def _route_table(self) -> list[tuple[str, list[str], Handler]]:
        table: list[tuple[str, str, Handler]] = [
            ("GET", "users/@me", self._me),
            ("GET", "gateway/bot", self._gateway_bot),
            ("GET", "gateway", self._gateway_plain),
            ("GET", "applications/@me", self._application),
            ("GET", "oauth2/applications/@me", self._application),
            ("PUT", "applications/{app}/commands", self._sync),
            ("PUT", "applications/{app}/guilds/{guild}/commands", self._sync),
            ("GET", "applications/{app}/commands", self._commands),
            ("GET", "applications/{app}/guilds/{guild}/commands", self._commands),
            ("POST", "interactions/{id}/{token}/callback", self._callback),
            ("GET", "webhooks/{app}/{token}/messages/{message}", self._webhook_get),
            ("PATCH", "webhooks/{app}/{token}/messages/{message}", self._webhook_edit),
            ("DELETE", "webhooks/{app}/{token}/messages/{message}", self._webhook_delete),
            ("POST", "webhooks/{app}/{token}", self._followup),
            ("POST", "channels/{channel}/messages", self._channel_send),
            ("GET", "channels/{channel}/messages/{message}", self._channel_get),
            ("PATCH", "channels/{channel}/messages/{message}", self._channel_edit),
            ("DELETE", "channels/{channel}/messages/{message}", self._channel_delete),
            ("GET", "channels/{channel}", self._channel_info),
        ]
        return [(method, path.split("/"), handler) for method, path, handler in table]

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        parts = request.match_info["path"].strip("/").split("/")
        for method, pattern, handler in self._routes:
            if method != request.method or len(pattern) != len(parts):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                try:
                    if not (
                        pattern[0] in ("webhooks", "interactions") or self._authorized(request)
                    ):
                        raise HTTPError(401, 0, "401: Unauthorized")
                    return await handler(request, params)
                except HTTPError as exc:
                    return _json({"code": exc.code, "message": exc.message}, status=exc.status)
        route = f"{request.method} /{'/'.join(parts)}"
        log.warning("discord stand-in: unknown route %s (answered 404)", route)
        self.unknown_routes.append(route)
        return _json({"code": 0, "message": "404: Not Found"}, status=404)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    async def _me(self, request: web.Request, params: dict[str, str]) -> web.StreamResponse:
        return _json(self.bot.payload())

    async def _gateway_bot(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _json(
            {
                "url": self.gateway_url,
                "shards": self.shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 0,
                    "max_concurrency": 16,
                },
            }
        )

    async def _gateway_plain(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _json({"url": self.gateway_url})

    async def _application(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _json(
            {
                "id": str(self.application_id),
                "name": self.bot.name,
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.bot.payload(),
                "summary": "",
                "verify_key": "0" * 64,
                "team": None,
                "flags": 0,
            }
        )

    async def _sync(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._check_app(params)
        synced = []
        for command in await request.json():
            known = self.commands.get(command["name"])
            stored = {
                **command,
                "id": known["id"] if known else str(self.ids.next()),
                "application_id": str(self.application_id),
                "version": str(self.ids.next()),
                "type": command.get("type", 1),
            }
            if "guild" in params:
                stored["guild_id"] = params["guild"]
            self.commands[command["name"]] = stored
            synced.append(stored)
        await self._note_change()
        return _json(synced)

    async def _commands(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self._check_app(params)
        return _json(list(self.commands.values()))

    def _check_app(self, params: dict[str, str]) -> None:
        if params.get("app") != str(self.application_id):
            raise HTTPError(403, 50001, "Missing Access")

    # -- interactions ---

    def _interaction(self, token: str) -> Interaction:
        interaction = self._by_token.get(token)
        if interaction is None:
            raise HTTPError(401, 50027, "Invalid Webhook Token")
        return interaction

    async def _callback(self, request: web.Request, params: dict[str, str]) -> web.Response:
        interaction = self._interaction(params["token"])
        if str(interaction.id) != params["id"]:
            raise HTTPError(404, 10062, "Unknown interaction")
        if interaction.responses:
            raise HTTPError(400, 40060, "Interaction has already been acknowledged.")
        interaction.acked_after = time.monotonic() - interaction.created
        if self.ack_deadline is not None and interaction.acked_after > self.ack_deadline:
            raise HTTPError(404, 10062, "Unknown interaction")
        body, files = await _read_body(request)
        kind = int(body["type"])
        data = body.get("data") or {}
        interaction.responses.append(kind)
        resource: Json | None = None
        loading = False
        if kind in (4, 5):  # a message, or "thinking..." to be edited later
            loading = kind == 5
            message = Message(
                self.ids.next(),
                interaction.channel.id,
                self.bot,
                interaction_id=interaction.id,
                application_id=self.application_id,
            )
            self.messages[message.id] = message
            interaction.original = message
            self._apply(message, data, files, kind="create", via="callback")
            resource = {"type": kind, "message": message.payload(interaction.guild.id)}
        elif kind == 7 and interaction.type == 3:  # the pressed message is updated
            pressed = self.messages.get(int(interaction.data.get("message_id", 0) or 0))
            if pressed is not None:
                self._apply(pressed, data, files, kind="edit", via="callback")
        elif kind == 8:
            interaction.choices = list(data.get("choices", []))
        elif kind == 9:
            interaction.modal = data
        interaction.answered.set()
        await self._note_change()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        answer: Json = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": loading,
                "response_message_ephemeral": bool(data.get("flags", 0) & 64),
            }
        }
        if interaction.original is not None:
            answer["interaction"]["response_message_id"] = str(interaction.original.id)
        if resource is not None:
            answer["resource"] = resource
        return _json(answer)

    def _webhook_message(self, params: dict[str, str]) -> tuple[Interaction, Message]:
        if params["app"] != str(self.application_id):
            raise HTTPError(404, 10015, "Unknown Webhook")
        interaction = self._interaction(params["token"])
        if params["message"] == "@original":
            message = interaction.original
        else:
            message = self.messages.get(int(params["message"]))
            if message is not None and message.interaction_id != interaction.id:
                message = None
        if message is None or message.deleted:
            raise HTTPError(404, 10008, "Unknown Message")
        return interaction, message

    async def _webhook_get(self, request: web.Request, params: dict[str, str]) -> web.Response:
        interaction, message = self._webhook_message(params)
        return _json(message.payload(interaction.guild.id))

    async def _webhook_edit(self, request: web.Request, params: dict[str, str]) -> web.Response:
        interaction, message = self._webhook_message(params)
        body, files = await _read_body(request)
        self._apply(message, body, files, kind="edit", via="webhook")
        await self._note_change()
        return _json(message.payload(interaction.guild.id))

    async def _webhook_delete(self, request: web.Request, params: dict[str, str]) -> web.Response:
        _, message = self._webhook_message(params)
        message.deleted = True
        self.operations.append(Operation("delete", message, [], "webhook"))
        await self._note_change()
        return web.Response(status=204)

    async def _followup(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if params["app"] != str(self.application_id):
            raise HTTPError(404, 10015, "Unknown Webhook")
        interaction = self._interaction(params["token"])
        if not interaction.responses:
            raise HTTPError(400, 40060, "Interaction has not been acknowledged.")
        body, files = await _read_body(request)
        message = Message(
            self.ids.next(),
            interaction.channel.id,
            self.bot,
            interaction_id=interaction.id,
            application_id=self.application_id,
        )
        self.messages[message.id] = message
        self._apply(message, body, files, kind="create", via="webhook")
        await self._note_change()
        return _json(message.payload(interaction.guild.id))

    # -- channels ---

    def _channel(self, params: dict[str, str]) -> Channel:
        channel = self.channels.get(int(params["channel"]))
        if channel is None:
            raise HTTPError(404, 10003, "Unknown Channel")
        return channel

    def _channel_message(self, params: dict[str, str]) -> tuple[Channel, Message]:
        channel = self._channel(params)
        message = self.messages.get(int(params["message"]))
        if message is None or message.deleted or message.channel_id != channel.id:
            raise HTTPError(404, 10008, "Unknown Message")
        return channel, message

    async def _channel_info(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _json(self._channel(params).payload())

    async def _channel_send(self, request: web.Request, params: dict[str, str]) -> web.Response:
        channel = self._channel(params)
        body, files = await _read_body(request)
        message = Message(self.ids.next(), channel.id, self.bot)
        self.messages[message.id] = message
        self._apply(message, body, files, kind="create", via="channel")
        await self._note_change()
        return _json(message.payload(channel.guild_id))

    async def _channel_get(self, request: web.Request, params: dict[str, str]) -> web.Response:
        channel, message = self._channel_message(params)
        return _json(message.payload(channel.guild_id))

    async def _channel_edit(self, request: web.Request, params: dict[str, str]) -> web.Response:
        channel, message = self._channel_message(params)
        if message.author.id != self.bot.id:
            raise HTTPError(403, 50005, "Cannot edit a message authored by another user")
        body, files = await _read_body(request)
        self._apply(message, body, files, kind="edit", via="channel")
        await self._note_change()
        return _json(message.payload(channel.guild_id))

    async def _channel_delete(self, request: web.Request, params: dict[str, str]) -> web.Response:
        _, message = self._channel_message(params)
        message.deleted = True
        self.operations.append(Operation("delete", message, [], "channel"))
        await self._note_change()
        return web.Response(status=204)

    def _apply(
        self, message: Message, body: Json, files: list[tuple[str, bytes]], *, kind: str, via: str
    ) -> None:
        """Create or edit `message` from a message payload, as Discord does: fields left out
        stay; `attachments` lists the old ones kept (by id) and the new files."""
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = list(body["components"] or [])
        if "flags" in body and kind == "create":
            message.flags = int(body["flags"] or 0)
        uploaded = [
            {
                "id": str(self.ids.next()),
                "filename": name,
                "size": len(blob),
                "url": f"{self.base_url}/attachments/{message.channel_id}/{name}",
                "proxy_url": f"{self.base_url}/attachments/{message.channel_id}/{name}",
                "content_type": "image/png",
            }
            for name, blob in files
        ]
        if "attachments" in body or files:
            keep = {str(a.get("id")) for a in body.get("attachments") or []}
            message.attachments = [a for a in message.attachments if a["id"] in keep] + uploaded
        if kind == "edit":
            message.edited_at = time.time()
        message.versions.append(message.payload(None))
        self.operations.append(Operation(kind, message, [name for name, _ in files], via))


def _json(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", as Discord sends it: discord.py compares the header whole.
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"}
    )


async def _read_body(request: web.Request) -> tuple[Json, list[tuple[str, bytes]]]:
    """A JSON body, or a multipart one (`payload_json` and `files[n]`)."""
    if request.content_type.startswith("multipart/"):
        body: Json = {}
        files: list[tuple[str, bytes]] = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                continue
            blob = await part.read()
            if part.name == "payload_json":
                body = json.loads(blob)
            else:
                files.append((part.filename or part.name or "file", bytes(blob)))
        return body, files
    if request.can_read_body:
        text = await request.text()
        return (json.loads(text) if text else {}), []
    return {}, []
