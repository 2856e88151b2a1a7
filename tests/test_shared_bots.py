"""Several real bot processes on one simulated Discord, one PostgreSQL and one Wiro.

Each process runs one shard of the bot (`discord.shard_count` N, `discord.shard_ids` [i]);
members in servers on every shard run /imagine in a burst; one process is killed with SIGKILL
while it holds jobs at Wiro and jobs still waiting. Every job must end posted exactly once
(one result put before members), each Run sent once, and Wiro never asked to run more than
`jobs.max_concurrent` tasks at once. The Discord stand-in runs in this process; the bots
reach it over loopback through `discord.api_base_url`, as they would a REST proxy.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.discord_standin import DiscordStandIn
from tests.test_cli import MODEL
from tests.wiro_standin import WiroStandIn

pytestmark = pytest.mark.processes

_starts = itertools.count(1)

#: Every wait on the processes ends within this (they start in about a second each).
WITHIN = 45.0


@dataclass
class BotProcess:
    shard: int
    process: asyncio.subprocess.Process
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def bot_env(
    tmp_path: Path, wiro: WiroStandIn, discord: DiscordStandIn, postgres_url: str, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIROBOT_")}
    env.update(
        WIROBOT_DISCORD__TOKEN=discord.token,
        WIROBOT_DISCORD__API_BASE_URL=discord.api_base_url,
        WIROBOT_DISCORD__SHARD_COUNT=str(discord.shards),
        WIROBOT_DISCORD__STATUS_EDIT_INTERVAL="0.2",
        WIROBOT_WIRO__API_KEY=wiro.api_key,
        WIROBOT_WIRO__API_SECRET=wiro.api_secret or "",
        WIROBOT_WIRO__BASE_URL=wiro.base_url,
        WIROBOT_WIRO__SOCKET_URL=wiro.socket_url,
        WIROBOT_DATABASE__URL=postgres_url,
        WIROBOT_DATABASE__PATH=str(tmp_path / "unused" / "wirobot.db"),
        WIROBOT_JOBS__POLL_MIN_INTERVAL="0.02",
        WIROBOT_JOBS__POLL_MAX_INTERVAL="0.1",
        WIROBOT_JOBS__CLAIM_LEASE_SECONDS="1",
        WIROBOT_MODELS__DEFAULT=MODEL,
        WIROBOT_WEB__PORT="0",
    )
    env.update(extra)
    return env


@asynccontextmanager
async def bots(
    env: dict[str, str], tmp_path: Path, discord: DiscordStandIn, shards: list[int]
) -> AsyncIterator[dict[int, BotProcess]]:
    """One `wirobot run` process per shard, each connected (READY) before this yields."""
    running: dict[int, BotProcess] = {}
    try:
        for shard in shards:
            running[shard] = await start_bot(env, tmp_path, shard)
        await wait_connected(discord, running)
        yield running
    finally:
        for bot in running.values():
            if bot.process.returncode is None:
                bot.process.send_signal(signal.SIGTERM)
        for bot in running.values():
            try:
                async with asyncio.timeout(20):
                    await bot.process.wait()
            except TimeoutError:
                bot.process.kill()
                await bot.process.wait()


async def start_bot(env: dict[str, str], tmp_path: Path, shard: int) -> BotProcess:
    log = tmp_path / f"bot-{shard}-{next(_starts)}.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env={**env, "WIROBOT_DISCORD__SHARD_IDS": f"[{shard}]"},
            cwd=tmp_path,
            stdout=out,
            stderr=out,
        )
    return BotProcess(shard, process, log)


async def wait_connected(discord: DiscordStandIn, running: dict[int, BotProcess]) -> None:
    def connected() -> bool:
        for bot in running.values():
            if bot.process.returncode is not None:
                raise AssertionError(f"bot on shard {bot.shard} exited:\n{bot.log_text()}")
        return set(running) <= discord.connected_shards() and "imagine" in discord.commands

    try:
        await discord.wait_for(connected, WITHIN)
    except TimeoutError:
        logs = "\n".join(f"--- shard {b.shard}\n{b.log_text()}" for b in running.values())
        raise AssertionError(f"bots did not connect:\n{logs}") from None


async def until(check: Callable[[], Awaitable[bool]], within: float = WITHIN) -> None:
    """Wait for a condition of other processes or the database (looked at every 50 ms)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def peak_at_wiro(wiro: WiroStandIn) -> int:
    """The most tasks Wiro held at once (created, not yet ended), over the whole test."""
    moments: list[tuple[float, int]] = []
    for task in wiro.tasks.values():
        moments.append((task.created_at, 1))
        end = task.finished_at
        if end is not None:
            moments.append((end, -1))
    peak = now = 0
    for _, step in sorted(moments, key=lambda m: (m[0], m[1])):
        now += step
        peak = max(peak, now)
    return peak


async def test_one_bot_process_answers_imagine_and_posts_the_result(
    tmp_path: Path, wiro: WiroStandIn, postgres_url: str
) -> None:
    async with DiscordStandIn(shards=1) as discord:
        guild = discord.add_guild("painters")
        env = bot_env(tmp_path, wiro, discord, postgres_url)
        async with bots(env, tmp_path, discord, [0]) as running:
            member = guild.members[0]
            asked = await discord.slash(guild, member, "imagine", prompt="a lighthouse at dusk")
            await discord.wait_for(lambda: bool(discord.messages_of(1)), WITHIN)
            await discord.wait_for(lambda: bool(discord.results_of(1)), WITHIN)
            (result,) = discord.results_of(1)
            assert result.message is asked.original  # the status message became the result
            assert result.message.attachments
            assert "wirobot:reroll:1" in result.message.custom_ids
            assert not discord.unknown_routes, discord.unknown_routes
            del running
