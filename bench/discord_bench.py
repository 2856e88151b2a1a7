"""Discord benchmark: a burst of /imagine commands through the simulated Discord (simcord) into
the real WiroBot, with the Wiro stand-in behind it.

    python bench/discord_bench.py [--commands 200] [--over 1] [--members 20]
                                  [--seconds 3] [--jitter 0.5] [--status-interval 1.5]

Prints the acknowledgement latency (p50, p99), how many jobs finished and were posted, and the
delay from a task finishing at Wiro to its images being posted (p50, p95), against the targets:
ack p99 under 300 ms, all commands finished and posted, posting delay p50 under 1.5 s.

How it is measured
------------------
- The bot is the real WiroBot with its real command tree, engine and status updater, driven by
  simcord's in-memory Discord; its engine talks HTTP to the Wiro stand-in, which runs in a child
  process (Wiro is another machine in real life). Tasks take `seconds` ± `jitter` at Wiro.
- The burst: `commands` INTERACTION_CREATE events for /imagine, evenly spread over `over`
  seconds, from `members` members in turn. They are delivered the way `member.slash()`
  delivers them (same payload, same permission and visibility checks), but without
  `slash()`'s wait for the bot to settle after each one: simcord allows one operation at a
  time, and settling after each command would serialise the burst.
- Acknowledgement: from the moment the event is handed to the bot's gateway to the moment
  the bot's first interaction callback (the defer, or an answer) reaches simcord's router.
- Posted: the moment the request carrying the images (the status message's edit into the
  result, or a new channel message) reaches the router, minus the stand-in's `finished_at`
  for the job's task. Both are time.monotonic() (one system-wide clock on Linux).
- The posting delay is split into the engine's share (Wiro finished -> the engine announced
  the job's end: its polling), the wait for the status updater's next tick, and the tick's
  work (images, upload) until the request reached the router.
- simcord runs discord.py's timers (the updater's ticker among them) on a virtual clock; a
  pump here moves it with real time every 5 ms and fires the timers that fell due. How late
  it ran is printed ("clock pump lag"): mostly the busy event loop, which would delay a real
  timer just the same.
- simcord answers HTTP in-process and at once, with no rate limits and no network: the
  figures are the bot's own processing (and simcord's), not Discord's round trips; add those
  to compare with a live bot.
- The burst and the clock pump use simcord internals (its actors' and settlement helpers,
  simcord 3.2.1); a simcord upgrade may need them adjusted.

The status edit interval is the shipped default, 1.5 s (`--status-interval` to change it). A
finished job's result goes out at the status updater's next beat (a quarter second) unless its
message was edited less than an interval ago.

The machine matters: the bot, simcord and the stand-in share its CPUs, and another busy
process lengthens every figure (the load average is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simcord
import simcord.http.router
from simcord import actors as simcord_actors
from simcord import interactions as simcord_interactions
from simcord._settlement import _active_callbacks as prune_callbacks
from simcord._settlement import _run_due_virtual_callbacks as run_due_virtual_callbacks
from simcord.actors import MemberActor
from simcord.builders import ChannelHandle
from simcord.enums import AppCommandType, InteractionType

from bench.engine_bench import measure_lag, percentile, standin
from bot.discord_bot import WiroBot
from bot.jobs.engine import JobEngine
from bot.jobs.events import EventKind, JobEvent
from bot.jobs.job import JobState
from bot.runtime import Runtime, open_runtime
from bot.settings import Settings
from bot.store import HistoryQuery

#: The real clock. simcord makes time.monotonic() answer virtual time inside bot code, and our
#: router hook runs inside bot code, so keep the real one from before simcord starts.
REAL_MONOTONIC: Callable[[], float] = time.monotonic

ACK_TARGET = 0.300
POST_TARGET = 1.5


class Recorder:
    """Wraps simcord's HTTP router: when the bot answered each interaction, and when each
    message received files."""

    def __init__(self) -> None:
        self.acked: dict[int, float] = {}  # interaction id -> first callback
        self.ack_kind: dict[int, int] = {}  # interaction id -> callback type
        self.files_at: dict[int, float] = {}  # message id -> first request carrying files
        self._original: Any = None

    def install(self) -> None:
        self._original = original = simcord.http.router.dispatch

        def dispatch(backend: Any, method: str, path: str, **kwargs: Any) -> Any:
            result = original(backend, method, path, **kwargs)
            now = REAL_MONOTONIC()
            parts = path.strip("/").split("/")
            if parts[0] == "interactions" and parts[-1] == "callback":
                interaction_id = int(parts[1])
                if interaction_id not in self.acked:
                    self.acked[interaction_id] = now
                    body = kwargs.get("json") or {}
                    self.ack_kind[interaction_id] = int(body.get("type", 0))
            if kwargs.get("files") and isinstance(result, dict) and "id" in result:
                self.files_at.setdefault(int(result["id"]), now)
            return result

        simcord.http.router.dispatch = dispatch

    def uninstall(self) -> None:
        if self._original is not None:
            simcord.http.router.dispatch = self._original


def emit_slash(
    actor: MemberActor, channel: ChannelHandle, name: str, **options: Any
) -> tuple[int, float]:
    """Deliver one slash command like `actor.slash()` does, without settling afterwards.
    Returns the interaction's id and when it was handed to the bot's gateway."""
    env = actor._env
    simcord_actors._check_actor_channel(actor, channel)
    root = simcord_actors._resolve_visible_command(
        actor, channel.id, name, AppCommandType.CHAT_INPUT
    )
    leaf, nesting = simcord_interactions.walk_to_subcommand(root, [])
    leaf_options, resolved = simcord_interactions.build_options(
        actor, name, leaf, options, channel_id=channel.id
    )
    data: dict[str, Any] = {
        "id": root["id"],
        "name": root["name"],
        "type": root.get("type", AppCommandType.CHAT_INPUT),
        "options": simcord_interactions.nest_options(root, nesting, leaf_options),
    }
    if resolved:
        data["resolved"] = resolved
    if root.get("guild_id"):
        data["guild_id"] = root["guild_id"]
    record, payload = simcord_interactions.base_payload(
        env.backend,
        type=InteractionType.APPLICATION_COMMAND,
        channel_id=channel.id,
        guild_id=actor.guild.id,
        user_id=actor.id,
        data=data,
    )
    at = REAL_MONOTONIC()
    env.backend.emit("INTERACTION_CREATE", payload)
    return int(record.id), at


def pumped_timers_only(env: simcord.Env) -> None:
    """While `pump_clock` runs, the bot's timers fire from the pump alone. simcord also arms a
    real-time fallback for each virtual timer; once the pump falls a few milliseconds behind
    (a busy loop), those fire first, and each one settles simcord (inspecting every pending
    task of the bot): most of the loop's CPU in a burst of thousands, and none of it the bot's.
    Call before `env.start()`."""
    schedule = env._schedule_timer

    def schedule_timer(record: Any, callback: Any, args: Any, context: Any) -> None:
        schedule(record, callback, args, context)
        if getattr(env, "_pumping", False) and record.real_handle is not None:
            record.real_handle.cancel()
            record.real_handle = None

    env._schedule_timer = schedule_timer  # type: ignore[method-assign]


async def pump_clock(env: simcord.Env, stop: asyncio.Event, lag: list[float]) -> None:
    """Keep simcord's virtual clock in step with real time, as a real loop's clock would be:
    move it forward every few milliseconds and fire the bot's timers that fell due (the
    status ticker among them). Unlike `env.advance_time()` this does not wait for the bot to
    settle first: a real clock does not wait either, and simcord's settling, which inspects
    every pending task of the bot, would otherwise take most of the CPU during the burst."""
    loop = asyncio.get_running_loop()
    real_start = REAL_MONOTONIC()
    virtual_start = env._virtual_time
    env._pumping = True  # type: ignore[attr-defined]
    try:
        await _pump(env, stop, lag, loop, real_start, virtual_start)
    finally:
        env._pumping = False  # type: ignore[attr-defined]


async def _pump(
    env: simcord.Env,
    stop: asyncio.Event,
    lag: list[float],
    loop: asyncio.AbstractEventLoop,
    real_start: float,
    virtual_start: float,
) -> None:
    while not stop.is_set():
        await asyncio.sleep(0.005)
        behind = (REAL_MONOTONIC() - real_start) - (env._virtual_time - virtual_start)
        lag.append(behind)
        if behind > 0:
            # The clock alone: simcord's resource deadlines (polls, scheduled events) play no
            # part here, and checking them every few milliseconds costs the bot's loop.
            env.backend.advance_clock(behind)
            run_due_virtual_callbacks(env._settlement_state(), loop.time() + 1.0)
        # Forget the bot's cancelled timers, as simcord's settling does; left in its list,
        # each later callback's removal from it scans them all.
        prune_callbacks(env._settlement_state())


async def bench(
    commands: int, over: float, members: int, seconds: float, jitter: float, interval: float
) -> dict[str, Any]:
    recorder = Recorder()
    async with standin(seconds, jitter, same_process=False) as (wiro, wiro_stats):
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                discord={"status_edit_interval": interval},
                wiro={
                    "api_key": wiro["api_key"],
                    "api_secret": wiro["api_secret"],
                    "base_url": wiro["base_url"],
                    # Polling: simcord cannot park a task that waits on a live socket.
                    "socket_url": "",
                },
                database={"path": Path(folder) / "bench.db"},
                web={"port": 0},  # no web server: not part of the burst, and 8080 may be taken
                jobs={
                    "max_concurrent": commands,
                    "max_concurrent_per_guild": commands,
                    "max_concurrent_per_user": commands,
                },
            )
            # As the tests do: the runtime (engine, store) is opened outside simcord, so the
            # engine runs on real time and only the bot's own work is simcord's.
            async with open_runtime(settings) as runtime:
                bot = WiroBot(settings, runtime=runtime)
                recorder.install()
                env = simcord.Env(bot, settle_timeout=120.0, shard_count=1)
                try:
                    await env.start()
                    patience = over + (seconds + jitter) * 4 + 60
                    result = await drive(env, runtime, commands, over, members, patience)
                finally:
                    try:
                        await env.shutdown()
                    finally:
                        recorder.uninstall()
        counts = await wiro_stats()
    return summarise(result, recorder, counts, commands)


def watch_engine(engine: JobEngine) -> dict[int, float]:
    """When the engine announced each job's end (job id -> time). Recorded as the event is
    published, so no reader's scheduling delay is added."""
    reported: dict[int, float] = {}
    subscription = engine.subscribe()

    def put(event: JobEvent) -> None:
        if event.kind is EventKind.FINISHED:
            reported.setdefault(event.job.id, REAL_MONOTONIC())

    subscription._put = put  # type: ignore[method-assign]
    return reported


def watch_delivery(bot: Any) -> dict[int, float]:
    """When the status updater began delivering each job's end (job id -> time)."""
    picked: dict[int, float] = {}
    updater = bot.updater
    deliver = updater._deliver_final

    async def deliver_final(target: Any, job: Any) -> None:
        picked.setdefault(job.id, REAL_MONOTONIC())
        await deliver(target, job)

    updater._deliver_final = deliver_final
    return picked


async def drive(
    env: simcord.Env,
    runtime: Runtime,
    commands: int,
    over: float,
    members: int,
    patience: float,
) -> dict[str, Any]:
    guild = env.create_guild("Bench")
    channel = guild.create_text_channel("art")
    people = [guild.add_member(env.create_user(f"member{n}")) for n in range(members)]

    stop = asyncio.Event()
    clock_lag: list[float] = []
    loop_lag: list[float] = []
    pump = asyncio.create_task(pump_clock(env, stop, clock_lag))
    lag_task = asyncio.create_task(measure_lag(loop_lag, stop))
    emitted: dict[int, float] = {}
    reported = watch_engine(runtime.engine)
    picked = watch_delivery(env.bot)
    started = REAL_MONOTONIC()
    try:
        for n in range(commands):
            due = started + over * n / commands
            wait = due - REAL_MONOTONIC()
            if wait > 0:
                await asyncio.sleep(wait)
            interaction_id, at = emit_slash(
                people[n % members], channel, "imagine", prompt=f"bench {n}"
            )
            emitted[interaction_id] = at
            await asyncio.sleep(0)  # let the bot start on it, as Discord's gateway would
        burst_seconds = REAL_MONOTONIC() - started
        store = runtime.store
        # Until every job is posted, or long after it should have been (then the missing
        # ones show in the counts).
        give_up = REAL_MONOTONIC() + patience
        while True:
            jobs = await store.jobs.history(HistoryQuery(limit=commands * 2))
            posted = len(jobs) >= commands and all(job.posted_at is not None for job in jobs)
            if posted or REAL_MONOTONIC() > give_up:
                break
            await asyncio.sleep(0.1)
        wall = REAL_MONOTONIC() - started
    finally:
        stop.set()
        await asyncio.gather(pump, lag_task, return_exceptions=True)
    messages = [m for m in channel.history() if m.attachments]
    return {
        "emitted": emitted,
        "reported": reported,
        "picked": picked,
        "burst_seconds": burst_seconds,
        "wall_seconds": wall,
        "jobs": jobs,
        "messages_with_images": len(messages),
        "clock_lag": clock_lag,
        "loop_lag": loop_lag,
        "bot_errors": len(env.errors),
    }


def summarise(
    result: dict[str, Any], recorder: Recorder, counts: dict[str, Any], commands: int
) -> dict[str, Any]:
    emitted: dict[int, float] = result["emitted"]
    acks = [recorder.acked[i] - at for i, at in emitted.items() if i in recorder.acked]
    jobs = result["jobs"]
    reported: dict[int, float] = result["reported"]
    picked: dict[int, float] = result["picked"]
    delays, polling, waiting, posting = [], [], [], []
    for job in jobs:
        if job.result_message_id is None or job.task_id is None:
            continue
        posted = recorder.files_at.get(job.result_message_id)
        finished = counts["finished_at"].get(job.task_id)
        if posted is None or finished is None:
            continue
        delays.append(posted - finished)
        if job.id in reported and job.id in picked:
            polling.append(reported[job.id] - finished)
            waiting.append(picked[job.id] - reported[job.id])
            posting.append(posted - picked[job.id])
    return {
        "commands": commands,
        "burst_seconds": result["burst_seconds"],
        "wall_seconds": result["wall_seconds"],
        "acked": len(acks),
        "deferred": sum(1 for kind in recorder.ack_kind.values() if kind == 5),
        "ack_p50": statistics.median(acks) if acks else float("nan"),
        "ack_p99": percentile(acks, 0.99) if acks else float("nan"),
        "ack_max": max(acks) if acks else float("nan"),
        "jobs": len(jobs),
        "succeeded": sum(1 for job in jobs if job.status is JobState.SUCCEEDED),
        "posted": len(delays),
        "messages_with_images": result["messages_with_images"],
        "post_p50": statistics.median(delays) if delays else float("nan"),
        "post_p95": percentile(delays, 0.95) if delays else float("nan"),
        "engine_p50": statistics.median(polling) if polling else float("nan"),
        "engine_p95": percentile(polling, 0.95) if polling else float("nan"),
        "tick_p50": statistics.median(waiting) if waiting else float("nan"),
        "tick_p95": percentile(waiting, 0.95) if waiting else float("nan"),
        "bot_p50": statistics.median(posting) if posting else float("nan"),
        "bot_p95": percentile(posting, 0.95) if posting else float("nan"),
        "detail_calls_per_job": counts["calls"].get("detail", 0) / max(1, len(jobs)),
        "clock_lag_p99": percentile(result["clock_lag"], 0.99) if result["clock_lag"] else 0.0,
        "loop_lag_p99": percentile(result["loop_lag"], 0.99) if result["loop_lag"] else 0.0,
        "errors": result["bot_errors"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--over", type=float, default=1.0, help="seconds the burst is spread over")
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=3.0, help="task duration at Wiro")
    parser.add_argument("--jitter", type=float, default=0.5, help="± seconds per task")
    parser.add_argument(
        "--status-interval", type=float, default=1.5, help="discord.status_edit_interval"
    )
    args = parser.parse_args()
    run: Coroutine[Any, Any, dict[str, Any]] = bench(
        args.commands, args.over, args.members, args.seconds, args.jitter, args.status_interval
    )
    load = os.getloadavg()[0]
    r = asyncio.run(run)
    n = r["commands"]
    print(
        f"burst                    {n} /imagine from {args.members} members "
        f"in {r['burst_seconds']:.2f} s"
    )
    print(f"Wiro tasks               {args.seconds:g} s ± {args.jitter:g} s (child process)")
    print(f"status edit interval     {args.status_interval:g} s")
    print(f"machine                  {os.cpu_count()} CPUs, load average {load:.2f} before the run")
    print(f"wall time                {r['wall_seconds']:.2f} s")
    print(f"acknowledged             {r['acked']}/{n} ({r['deferred']} deferred)")
    print(f"ack latency p50          {r['ack_p50'] * 1000:.1f} ms")
    print(
        f"ack latency p99          {r['ack_p99'] * 1000:.1f} ms  "
        f"target < {ACK_TARGET * 1000:.0f} ms  (max {r['ack_max'] * 1000:.1f} ms)"
    )
    print(
        f"jobs                     {r['jobs']} ({r['succeeded']} succeeded, "
        f"{r['posted']} posted, {r['messages_with_images']} messages with images)"
    )
    print(f"finish -> posted p50     {r['post_p50']:.3f} s  target < {POST_TARGET:g} s")
    print(f"finish -> posted p95     {r['post_p95']:.3f} s")
    print(
        f"  Wiro -> engine p50/p95 {r['engine_p50']:.3f} / {r['engine_p95']:.3f} s  "
        "(the engine's polling)"
    )
    print(
        f"  engine -> next tick    {r['tick_p50']:.3f} / {r['tick_p95']:.3f} s  "
        "(waiting for the status ticker)"
    )
    print(
        f"  tick -> posted         {r['bot_p50']:.3f} / {r['bot_p95']:.3f} s  "
        "(images, upload, with the tick's other edits)"
    )
    print(f"Detail calls per job     {r['detail_calls_per_job']:.2f}")
    print(f"event-loop lag p99       {r['loop_lag_p99'] * 1000:.1f} ms")
    print(f"clock pump lag p99       {r['clock_lag_p99'] * 1000:.1f} ms")
    print(f"errors inside the bot    {r['errors']}")
    ok = (
        r["acked"] == n
        and r["ack_p99"] < ACK_TARGET
        and r["jobs"] == n
        and r["succeeded"] == n
        and r["posted"] == n
        and r["post_p50"] < POST_TARGET
        and r["errors"] == 0
    )
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
