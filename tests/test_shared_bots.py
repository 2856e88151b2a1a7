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
import collections
import functools
import itertools
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.jobs.job import JobState, Requester
from bot.store import NewJob, Store
from tests.discord_standin import DiscordStandIn, Guild, Interaction, User
from tests.test_cli import MODEL, process_env
from tests.wiro_standin import WiroStandIn

pytestmark = pytest.mark.processes

_starts = itertools.count(1)

#: Every wait on the processes ends within this (they start in about a second each).
WITHIN = 45.0


@dataclass
class BotProcess:
    shard: int | None
    process: asyncio.subprocess.Process
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def bot_env(
    tmp_path: Path, wiro: WiroStandIn, discord: DiscordStandIn, postgres_url: str, **extra: str
) -> dict[str, str]:
    return process_env(
        wiro,
        tmp_path / "unused" / "wirobot.db",
        WIROBOT_DISCORD__TOKEN=discord.token,
        WIROBOT_DISCORD__API_BASE_URL=discord.api_base_url,
        WIROBOT_DISCORD__SHARD_COUNT=str(discord.shards),
        WIROBOT_DISCORD__STATUS_EDIT_INTERVAL="0.2",
        WIROBOT_DATABASE__URL=postgres_url,
        WIROBOT_JOBS__CLAIM_LEASE_SECONDS="1",
        WIROBOT_WEB__PORT="0",
        **extra,
    )


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


async def start_bot(env: dict[str, str], tmp_path: Path, shard: int | None) -> BotProcess:
    """A `wirobot run` process for one shard (None: every shard /gateway/bot recommends)."""
    log = tmp_path / f"bot-{shard}-{next(_starts)}.log"
    if shard is not None:
        env = {**env, "WIROBOT_DISCORD__SHARD_IDS": f"[{shard}]"}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env=env,
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

            # Typing a model name offers the matching models.
            typing = await discord.autocomplete(guild, member, "imagine", "model", "ars")
            await discord.wait_for(typing.answered.is_set, WITHIN)
            assert typing.choices and MODEL in [c["value"] for c in typing.choices]

            # Remix: the form comes back with the prompt; the edited prompt makes job 2.
            remix = await discord.press(result.message, "wirobot:remix:1", member)
            await discord.wait_for(remix.answered.is_set, WITHIN)
            sent = await discord.submit(remix, member, {"prompt": "a lighthouse at dawn"})
            await discord.wait_for(lambda: bool(discord.results_of(2)), WITHIN)
            assert sent.original is not None and "Job 2" in sent.original.footers
            assert wiro.runs[-1].body["prompt"] == "a lighthouse at dawn"
            assert not discord.unknown_routes, discord.unknown_routes
            del running


@dataclass
class Asked:
    """One /imagine a member ran: who, where, and the job it became."""

    guild: Guild
    member: User
    prompt: str
    interaction: Interaction
    job_id: int = 0


def job_shown(discord: DiscordStandIn, asked: Asked) -> int | None:
    """The job id the member's status message shows (its footer), once it is shown."""
    original = asked.interaction.original
    if original is None:
        return None
    for footer in original.footers:
        if footer.startswith("Job "):
            return int(footer.removeprefix("Job "))
    return None


def peak_per_member(wiro: WiroStandIn, member_of: dict[str, str]) -> int:
    """The most tasks one member had at Wiro at once."""
    peak = 0
    for member in set(member_of.values()):
        spans = [
            (task.created_at, task.finished_at or float("inf"))
            for task in wiro.tasks.values()
            if member_of.get(str(task.inputs.get("prompt"))) == member
        ]
        for start, _ in spans:
            peak = max(peak, sum(1 for s, e in spans if s <= start < e))
    return peak


@pytest.mark.parametrize("processes", [2, 3])
async def test_a_burst_on_several_bot_processes_is_posted_once_when_one_is_killed(
    tmp_path: Path, wiro: WiroStandIn, postgres_url: str, processes: int
) -> None:
    max_concurrent = 3
    wiro.hold()  # tasks stay at Wiro until the test lets them end
    async with DiscordStandIn(shards=processes) as discord:
        guilds = [
            discord.add_guild(f"guild{shard}{letter}", shard=shard, members=2)
            for shard in range(processes)
            for letter in "ab"
        ]
        env = bot_env(
            tmp_path,
            wiro,
            discord,
            postgres_url,
            WIROBOT_JOBS__MAX_CONCURRENT=str(max_concurrent),
            WIROBOT_JOBS__MAX_CONCURRENT_PER_USER="1",
        )
        store = await Store.open_url(postgres_url)
        try:
            async with bots(env, tmp_path, discord, list(range(processes))) as running:
                # The burst: every member of every server asks twice.
                asked: list[Asked] = []
                for round_ in (1, 2):
                    for guild in guilds:
                        for member in guild.members:
                            prompt = f"{member.name} round {round_}"
                            interaction = await discord.slash(
                                guild, member, "imagine", prompt=prompt
                            )
                            asked.append(Asked(guild, member, prompt, interaction))
                member_of = {a.prompt: a.member.name for a in asked}
                await discord.wait_for(lambda: all(job_shown(discord, a) for a in asked), WITHIN)
                for a in asked:
                    a.job_id = job_shown(discord, a) or 0
                assert len({a.job_id for a in asked}) == len(asked)
                await discord.wait_for(lambda: len(wiro.tasks) >= max_concurrent, WITHIN)

                # Kill a process that holds jobs at Wiro (and, all being busy, waiting ones).
                pids = {bot.process.pid: bot for bot in running.values()}
                owners = {a.job_id: await store.jobs.owner_of(a.job_id) for a in asked}
                at_wiro = {
                    job.id for job in await store.jobs.unfinished() if job.task_id is not None
                }
                victim = next(
                    pids[int(str(owners[j]).split(":")[1])]
                    for j in sorted(at_wiro)
                    if owners[j] is not None
                )
                victim_owner = next(
                    o for o in owners.values() if o and f":{victim.process.pid}:" in o
                )
                victims_at_wiro = {j for j in at_wiro if owners[j] == victim_owner}
                assert victims_at_wiro
                unfinished = {job.id for job in await store.jobs.unfinished()}
                victims_waiting = {
                    j for j, o in owners.items() if o == victim_owner and j not in at_wiro
                }
                assert victims_waiting & unfinished  # it has jobs waiting too
                victim.process.send_signal(signal.SIGKILL)
                await victim.process.wait()

                # Its jobs at Wiro are taken over by the others once its leases pass.
                async def taken_over() -> bool:
                    for job_id in victims_at_wiro:
                        owner = await store.jobs.owner_of(job_id)
                        if owner is None or owner == victim_owner:
                            return False
                    return True

                await until(taken_over)
                survivors = [b for b in running.values() if b is not victim]
                assert any("taken over; following it here" in b.log_text() for b in survivors)

                # The process that took them over posts them as they end, at once (not at its
                # next start); the one left at Wiro is cancelled below.
                cancelled = min(victims_at_wiro)
                for job_id in victims_at_wiro - {cancelled}:
                    prompt = next(a.prompt for a in asked if a.job_id == job_id)
                    (task,) = [t for t in wiro.tasks.values() if t.inputs.get("prompt") == prompt]
                    wiro.finish(task.id)
                    await until(functools.partial(_posted, store, job_id))
                    assert len(discord.results_of(job_id)) == 1

                # Its shard comes back in a new process (a restart); a member there presses
                # Cancel on a job that another process now runs.
                restarted = await start_bot(env, tmp_path, victim.shard)
                running[victim.shard] = restarted
                await wait_connected(discord, running)
                (mine,) = [a for a in asked if a.job_id == cancelled]
                assert mine.interaction.original is not None
                pressed = await discord.press(
                    mine.interaction.original, f"wirobot:cancel:{cancelled}", mine.member
                )
                await discord.wait_for(lambda: pressed.answered.is_set(), WITHIN)

                # Wiro runs everything else to its end as it comes.
                async def wiro_finishes_the_rest() -> None:
                    while True:
                        for task in list(wiro.tasks.values()):
                            holds_cancelled = task.inputs.get("prompt") == mine.prompt
                            if not task.is_terminal and not holds_cancelled:
                                wiro.finish(task.id)
                        await asyncio.sleep(0.05)

                finishing = asyncio.create_task(wiro_finishes_the_rest())
                try:

                    async def all_posted() -> bool:
                        jobs = [await store.jobs.get(a.job_id) for a in asked]
                        others = [j for j in jobs if j is not None and j.id != cancelled]
                        return len(others) == len(asked) - 1 and all(
                            j.posted_at is not None for j in others
                        )

                    await until(all_posted)
                    # The Cancel pressed on the restarted process stopped the task where it ran.
                    await until(lambda: _posted(store, cancelled))
                finally:
                    finishing.cancel()

                # Every job posted exactly once: one result (or one ending) members see.
                for a in asked:
                    job = await store.jobs.get(a.job_id)
                    assert job is not None and job.posted_at is not None
                    if job.status is JobState.SUCCEEDED:
                        assert len(discord.results_of(a.job_id)) == 1, a.prompt
                    shown = discord.messages_of(a.job_id)
                    assert len([m for m in shown if m.attachments]) <= 1, a.prompt
                # No Run twice; never more at Wiro at once than jobs.max_concurrent.
                created = collections.Counter(
                    r.body["prompt"] for r in wiro.runs if r.task_id is not None
                )
                assert max(created.values()) == 1
                assert peak_at_wiro(wiro) <= max_concurrent
                assert set(created) == {a.prompt for a in asked}  # each Run once, none refused
                assert not wiro.auth_failures  # no nonce used twice by two processes
                # Each member had one job at Wiro at a time, across all processes.
                assert peak_per_member(wiro, member_of) <= 1
                assert not discord.unknown_routes, discord.unknown_routes
                cancelled_job = await store.jobs.get(cancelled)
                assert cancelled_job is not None
                assert cancelled_job.status is JobState.CANCELLED
        finally:
            await store.close()


async def _posted(store: Store, job_id: int) -> bool:
    job = await store.jobs.get(job_id)
    return job is not None and job.posted_at is not None


async def test_a_result_whose_poster_died_before_recording_it_is_not_posted_again(
    tmp_path: Path, wiro: WiroStandIn, postgres_url: str
) -> None:
    async with DiscordStandIn(shards=1) as discord:
        guild = discord.add_guild("painters")
        env = bot_env(tmp_path, wiro, discord, postgres_url)
        store = await Store.open_url(postgres_url)
        try:
            async with bots(env, tmp_path, discord, [0]):
                await discord.slash(guild, guild.members[0], "imagine", prompt="a red kite")
                await discord.wait_for(lambda: bool(discord.results_of(1)), WITHIN)
                await until(lambda: _posted(store, 1))
            # As if the process had died between sending the result and recording it.
            await store.jobs.update(1, posted_at=None)
            now = time.time()
            # (Past the first poster's lease; this one's has passed too.)
            assert await store.jobs.claim_posting(1, "gone:1:x", now=now + 5, until=now - 1)

            async with bots(env, tmp_path, discord, [0]) as running:
                await until(lambda: _posted(store, 1))
                assert "already posted; recording it" in running[0].log_text()
            assert len(discord.results_of(1)) == 1  # members still see one result
        finally:
            await store.close()


async def test_the_stand_in_runs_as_its_own_process_for_benches(
    tmp_path: Path, wiro: WiroStandIn, postgres_url: str
) -> None:
    standin = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.discord_standin",
        "--shards",
        "2",
        cwd=Path(__file__).parent.parent,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert standin.stdout is not None
        async with asyncio.timeout(WITHIN):
            line = json.loads(await standin.stdout.readline())
        control = line["control_url"]
        env = bot_env(tmp_path, wiro, DiscordStandIn(), postgres_url)
        env.update(
            WIROBOT_DISCORD__TOKEN=line["token"],
            WIROBOT_DISCORD__API_BASE_URL=line["api_base_url"],
        )
        del env["WIROBOT_DISCORD__SHARD_COUNT"]  # auto-sharded: the count /gateway/bot gives
        async with aiohttp.ClientSession() as http:

            async def get(path: str) -> Any:
                async with http.get(f"{control}/{path}") as response:
                    return await response.json()

            async def post(path: str, body: dict[str, Any]) -> Any:
                async with http.post(f"{control}/{path}", json=body) as response:
                    assert response.status == 200, await response.text()
                    return await response.json()

            guild = await post("guilds", {"name": "painters", "shard": 1})
            bot = await start_bot(env, tmp_path, None)
            try:

                async def ready() -> bool:
                    info = await get("info")
                    # One process runs both shards the stand-in recommends.
                    return info["connected_shards"] == [0, 1] and "imagine" in info["commands"]

                await until(ready)
                asked = await post(
                    "slash",
                    {
                        "guild_id": guild["id"],
                        "user_id": guild["members"][0],
                        "name": "imagine",
                        "options": {"prompt": "a harbour at dawn"},
                    },
                )

                async def result_shown() -> bool:
                    answer = await get(f"interactions/{asked['interaction_id']}")
                    record = await get("record")
                    shown = [m for m in record["messages"] if m["id"] == answer["original_id"]]
                    return bool(shown and shown[0]["attachments"])

                await until(result_shown)
                assert (await get("record"))["unknown_routes"] == []
            finally:
                bot.process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(20):
                    await bot.process.wait()
    finally:
        standin.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            await standin.wait()


async def test_a_result_left_unposted_by_a_dead_process_is_posted_by_a_live_one(
    tmp_path: Path, wiro: WiroStandIn, postgres_url: str
) -> None:
    async with DiscordStandIn(shards=1) as discord:
        guild = discord.add_guild("painters")
        member = guild.members[0]
        env = bot_env(tmp_path, wiro, discord, postgres_url)
        store = await Store.open_url(postgres_url)
        try:
            async with bots(env, tmp_path, discord, [0]):
                # A job another process finished, then died before telling anyone.
                now = time.time()
                job = await store.jobs.create(
                    NewJob(
                        model=MODEL,
                        prompt="a stone bridge",
                        inputs={"prompt": "a stone bridge", "seed": 1},
                        seed=1,
                        requester=Requester(member.id, guild.id, guild.channel.id),
                        created_at=now - 30,
                        owner="gone:1:x",
                        lease_until=now - 20,
                        status=JobState.WAITING,
                    )
                )
                await store.jobs.finish(
                    job.id,
                    [],
                    status=JobState.FAILED,
                    finished_at=now - 10,
                    error="Wiro could not run the task.",
                )
                await until(functools.partial(_posted, store, job.id))
                (shown,) = discord.messages_of(job.id)
                assert shown.channel_id == guild.channel.id  # no message to edit: a new one
                assert "Wiro could not run the task." in json.dumps(shown.embeds)
        finally:
            await store.close()
