"""The bot itself: intents, mentions, and where its commands are synced."""

from __future__ import annotations

import discord
import pytest
import simcord

from bot.discord_bot import WiroBot, run_bot
from bot.runtime import open_runtime
from bot.settings import ConfigError, DiscordSettings, Settings
from tests.discord.conftest import Harness

CONFIGURED_GUILD = 1_234_567_890_123_456_789


async def test_the_bot_asks_only_for_guild_events_and_pings_nobody(harness: Harness) -> None:
    bot = harness.bot
    assert bot.intents == discord.Intents(guilds=True)
    assert not bot.intents.message_content
    assert bot.allowed_mentions is not None
    assert bot.allowed_mentions.to_dict() == {"parse": []}


async def test_commands_sync_globally_without_configured_guilds(harness: Harness) -> None:
    h = harness
    assert "imagine" in h.alice.available_commands(h.channel)


async def test_commands_sync_to_the_configured_guilds_at_once(discord_settings: Settings) -> None:
    settings = discord_settings.model_copy(
        update={"discord": DiscordSettings(guild_ids=[CONFIGURED_GUILD])}
    )
    async with open_runtime(settings) as runtime:
        env = simcord.Env(WiroBot(settings, runtime=runtime), shard_count=1)
        configured = env.create_guild("Configured", id=CONFIGURED_GUILD)
        other = env.create_guild("Other")
        await env.start()
        try:
            alice = configured.add_member(env.create_user("alice"))
            bob = other.add_member(env.create_user("bob"))
            assert "imagine" in alice.available_commands(configured.create_text_channel("art"))
            assert "imagine" not in bob.available_commands(other.create_text_channel("art"))
        finally:
            await env.shutdown()


def test_run_bot_needs_a_token(discord_settings: Settings) -> None:
    with pytest.raises(ConfigError, match=r"discord.token is not set"):
        run_bot(discord_settings)
