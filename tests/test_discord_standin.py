"""The Discord stand-in keeps to Discord's answers where a bot could go wrong: a route it does
not know is a 404 it remembers, a bot token is required, an interaction is answered once, and
a guild lands on the shard Discord's formula gives."""

from __future__ import annotations

import aiohttp

from tests.discord_standin import DiscordStandIn


async def test_unknown_routes_answer_404_and_are_remembered() -> None:
    async with DiscordStandIn() as discord, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {discord.token}"}
        async with http.get(f"{discord.api_base_url}/guilds/1/emojis", headers=headers) as r:
            assert r.status == 404
            assert (await r.json())["message"] == "404: Not Found"
        assert discord.unknown_routes == ["GET /guilds/1/emojis"]


async def test_the_bot_token_is_required_and_gateway_bot_points_at_the_stand_in() -> None:
    async with DiscordStandIn(shards=3) as discord, aiohttp.ClientSession() as http:
        async with http.get(f"{discord.api_base_url}/users/@me") as r:
            assert r.status == 401
        headers = {"Authorization": f"Bot {discord.token}"}
        async with http.get(f"{discord.api_base_url}/gateway/bot", headers=headers) as r:
            assert r.headers["Content-Type"] == "application/json"  # exactly, as discord.py wants
            body = await r.json()
        assert body["url"] == discord.gateway_url and body["shards"] == 3


async def test_guilds_land_on_the_shard_asked_for() -> None:
    async with DiscordStandIn(shards=4) as discord:
        for shard in range(4):
            guild = discord.add_guild(f"g{shard}", shard=shard)
            assert (guild.id >> 22) % 4 == shard
