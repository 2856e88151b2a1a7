"""Burst benchmark: ten thousand /imagine from two thousand members, eight slots, through the
simulated Discord (simcord) into the real WiroBot, with the Wiro stand-in behind it.

    python bench/burst_bench.py [--commands 10000] [--members 2000] [--over 30]
                                [--slots 8] [--seconds 120] [--steady 10]

Prints, for the burst and then for the full waiting line that it leaves: the CPU time of one
status tick, the event-loop lag p99 and how long the bot takes to answer an autocomplete,
against the targets: a tick under 20 ms of CPU, loop lag p99 under 50 ms, autocomplete
answered within 100 ms.

How it is measured
------------------
- The burst: `commands` /imagine, evenly spread over `over` seconds, from `members` members in
  turn (one server), delivered as `bench/discord_bench.py` delivers them. Tasks take `seconds`
  at Wiro, long enough that the line stays full: with `slots` slots almost every job waits.
- Once every job is stored and its status message sent ("the line is full"), the bot is
  watched for `steady` more seconds: only the status ticker and the autocompletes run then.
- A status tick is one beat of the status updater (`bot/discord_views/updater.py`). Its CPU is
  the thread CPU time spent inside the beat itself (places in line for every waiting job,
  choosing which messages to edit) plus the CPU of the edits it started, each measured while
  its own code runs, so other work on the loop in between is not counted.
- Autocomplete: the model option of /imagine, typed by a member every `--every` seconds;
  from the moment the event is handed to the bot's gateway to the moment its answer reaches
  simcord's router.
- Loop lag: how late a 20 ms sleep wakes up, sampled all along.
- simcord answers in-process, at once, with no rate limits: these are the bot's own costs
  (and simcord's, which shares the loop). The machine matters: the load average before the
  run is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import simcord
from simcord import actors as simcord_actors
from simcord import interactions as simcord_interactions
from simcord.actors import MemberActor
from simcord.builders import ChannelHandle
from simcord.enums import AppCommandType, InteractionType

from bench.cpu_split import CpuSplit
from bench.discord_bench import (
    REAL_MONOTONIC,
    Recorder,
    emit_slash,
    pump_clock,
    pumped_timers_only,
)
from bench.engine_bench import percentile, standin
from bot.discord_bot import WiroBot
from bot.jobs.job import JobState
from bot.runtime import Runtime, open_runtime
from bot.settings import Settings
from bot.store import HistoryQuery

TICK_TARGET = 0.020
LAG_TARGET = 0.050
AUTOCOMPLETE_TARGET = 0.100
#: The answer type of an autocomplete interaction.
AUTOCOMPLETE_RESULT = 8


class CpuTimed:
    """Awaits a coroutine and adds the thread CPU time of its own steps to `sink`."""

    def __init__(self, coro: Awaitable[Any], sink: list[float]) -> None:
        self._coro = coro.__await__()
        self._sink = sink

    def __await__(self) -> Generator[Any, Any, Any]:
        spent = 0.0
        value: Any = None
        error: BaseException | None = None
        try:
            while True:
                started = time.thread_time()
                try:
                    step = self._coro.throw(error) if error else self._coro.send(value)
                except StopIteration as stop:
                    return stop.value
                finally:
                    spent += time.thread_time() - started
                try:
                    value, error = (yield step), None
                except BaseException as exc:  # cancellation goes into the coroutine
                    value, error = None, exc
        finally:
            self._sink.append(spent)


class TickMeter:
    """Wraps the status updater: CPU of each beat's own pass, and of the edits it started."""

    def __init__(self, updater: Any) -> None:
        self.beats: list[tuple[float, int, float]] = []  # (pass CPU, edits, edits' CPU)
        self.recording = False
        self._edits: list[float] = []
        tick, update = updater._ticker.coro, updater._update

        async def timed_update(*args: Any) -> None:
            await CpuTimed(update(*args), self._edits)

        async def timed_tick() -> None:
            self._edits = []
            spent: list[float] = []
            await CpuTimed(tick(), spent)
            if self.recording:
                self.beats.append((spent[0], len(self._edits), sum(self._edits)))

        updater._update = timed_update
        updater._ticker.coro = timed_tick

    def summary(self) -> dict[str, float]:
        if not self.beats:
            return {"beats": 0}
        totals = [own + edits for own, _, edits in self.beats]
        return {
            "beats": len(self.beats),
            "pass_p50": statistics.median(own for own, _, _ in self.beats),
            "pass_max": max(own for own, _, _ in self.beats),
            "edits_per_beat": statistics.mean(n for _, n, _ in self.beats),
            "total_p50": statistics.median(totals),
            "total_p95": percentile(totals, 0.95),
            "total_max": max(totals),
        }


def emit_autocomplete(
    actor: MemberActor, channel: ChannelHandle, name: str, option: str, value: str
) -> tuple[int, float]:
    """Type into an autocomplete option like `actor.autocomplete()`, without waiting for the
    bot to settle. Returns the interaction's id and when it was handed to the gateway."""
    env = actor._env
    simcord_actors._check_actor_channel(actor, channel)
    root = simcord_actors._resolve_visible_command(
        actor, channel.id, name, AppCommandType.CHAT_INPUT
    )
    leaf, nesting = simcord_interactions.walk_to_subcommand(root, [])
    focused = next(item for item in leaf["options"] if item["name"] == option)
    options = [{"name": option, "type": focused["type"], "value": value, "focused": True}]
    data: dict[str, Any] = {
        "id": root["id"],
        "name": root["name"],
        "type": root.get("type", AppCommandType.CHAT_INPUT),
        "options": simcord_interactions.nest_options(root, nesting, options),
    }
    if root.get("guild_id"):
        data["guild_id"] = root["guild_id"]
    record, payload = simcord_interactions.base_payload(
        env.backend,
        type=InteractionType.APPLICATION_COMMAND_AUTOCOMPLETE,
        channel_id=channel.id,
        guild_id=actor.guild.id,
        user_id=actor.id,
        data=data,
    )
    at = REAL_MONOTONIC()
    env.backend.emit("INTERACTION_CREATE", payload)
    return int(record.id), at


class Phase:
    """What was measured while one phase lasted."""

    def __init__(self) -> None:
        self.lag: list[float] = []
        self.typed: dict[int, float] = {}  # autocomplete interaction id -> typed at

    def answers(self, recorder: Recorder) -> list[float]:
        return [recorder.acked[i] - at for i, at in self.typed.items() if i in recorder.acked]


async def measure_lag(sink: Callable[[], list[float]], stop: asyncio.Event) -> None:
    """How late a 20 ms sleep wakes up, into the current phase's samples."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.02)
        sink().append(loop.time() - before - 0.02)


async def type_now_and_then(
    people: list[MemberActor],
    channel: ChannelHandle,
    every: float,
    phase: Callable[[], Phase],
    stop: asyncio.Event,
) -> None:
    n = 0
    while not stop.is_set():
        await asyncio.sleep(every)
        interaction_id, at = emit_autocomplete(
            people[n % len(people)], channel, "imagine", "model", "ars"
        )
        phase().typed[interaction_id] = at
        n += 1


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    recorder = Recorder()
    async with standin(args.seconds, 0.0, same_process=False) as (wiro, _):
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                wiro={
                    "api_key": wiro["api_key"],
                    "api_secret": wiro["api_secret"],
                    "base_url": wiro["base_url"],
                    # Polling: simcord cannot park a task that waits on a live socket.
                    "socket_url": "",
                },
                database={"path": Path(folder) / "bench.db"},
                jobs={"max_concurrent": args.slots, "max_concurrent_per_guild": args.slots},
            )
            async with open_runtime(settings) as runtime:
                bot = WiroBot(settings, runtime=runtime)
                recorder.install()
                env = simcord.Env(bot, settle_timeout=600.0, shard_count=1)
                if not args.simcord_fallbacks:
                    pumped_timers_only(env)
                try:
                    await env.start()
                    return await drive(env, runtime, recorder, args)
                finally:
                    try:
                        await env.shutdown()
                    finally:
                        recorder.uninstall()


async def drive(
    env: simcord.Env, runtime: Runtime, recorder: Recorder, args: argparse.Namespace
) -> dict[str, Any]:
    guild = env.create_guild("Burst")
    channel = guild.create_text_channel("art")
    people = [guild.add_member(env.create_user(f"member{n}")) for n in range(args.members)]
    bot: Any = env.bot
    meter = TickMeter(bot.updater)
    phases = {"burst": Phase(), "full": Phase()}
    current = phases["burst"]

    stop, stop_typing = asyncio.Event(), asyncio.Event()
    clock_lag: list[float] = []
    pump = asyncio.create_task(pump_clock(env, stop, clock_lag))
    lag_task = asyncio.create_task(measure_lag(lambda: current.lag, stop))
    typing = asyncio.create_task(
        type_now_and_then(people, channel, args.every, lambda: current, stop_typing)
    )
    split = CpuSplit()
    started = REAL_MONOTONIC()
    cpu_started = time.process_time()
    split.start()
    try:
        meter.recording = True
        for n in range(args.commands):
            due = started + args.over * n / args.commands
            wait = due - REAL_MONOTONIC()
            if wait > 0:
                await asyncio.sleep(wait)
            emit_slash(people[n % args.members], channel, "imagine", prompt=f"burst {n}")
            await asyncio.sleep(0)
        emitted = REAL_MONOTONIC() - started
        # The burst lasts until every command has its job stored and its status message sent.
        targets = bot.updater._targets
        # Or until nothing moved for a while (then the missing ones show in the counts).
        seen, since = None, REAL_MONOTONIC()
        while REAL_MONOTONIC() - since < 20:
            answered = sum(1 for k in recorder.ack_kind.values() if k != AUTOCOMPLETE_RESULT)
            stored = await runtime.store.jobs.count_history(HistoryQuery())
            ready = sum(1 for t in targets.values() if t.ready)
            if answered >= args.commands and stored >= args.commands and ready == len(targets):
                break
            if (answered, stored, ready) != seen:
                seen, since = (answered, stored, ready), REAL_MONOTONIC()
            if args.verbose:
                print(f"answered {answered}, stored {stored}, shown {ready}/{len(targets)}")
            await asyncio.sleep(0.5)
        burst = REAL_MONOTONIC() - started
        burst_cpu = time.process_time() - cpu_started
        split.stop()
        burst_beats = meter.summary()
        waiting = len(runtime.engine.queue_positions())
        # The full line: only the ticker and the autocompletes from here on.
        meter.beats.clear()
        current = phases["full"]
        await asyncio.sleep(args.steady)
        full_beats = meter.summary()
        stop_typing.set()
        await asyncio.sleep(0.5)  # the last autocomplete's answer
    finally:
        stop.set()
        stop_typing.set()
        await asyncio.gather(pump, lag_task, typing, return_exceptions=True)
    jobs = runtime.engine._book.jobs.values()
    return {
        "emitted_seconds": emitted,
        "burst_seconds": burst,
        "burst_cpu": burst_cpu,
        "acked": sum(1 for kind in recorder.ack_kind.values() if kind != AUTOCOMPLETE_RESULT),
        "waiting": waiting,
        "at_wiro": sum(
            1 for job in jobs if not job.status.is_local and job.status is not JobState.SUCCEEDED
        ),
        "phases": {
            name: {
                "lag_p99": percentile(phase.lag, 0.99) if phase.lag else float("nan"),
                "answers": phase.answers(recorder),
                "typed": len(phase.typed),
            }
            for name, phase in phases.items()
        },
        "beats": {"burst": burst_beats, "full": full_beats},
        "errors": [repr(error)[:300] for error in env.errors],
        "split": split,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument("--over", type=float, default=30.0, help="seconds the burst is spread over")
    parser.add_argument("--slots", type=int, default=8, help="jobs.max_concurrent")
    parser.add_argument("--seconds", type=float, default=120.0, help="task duration at Wiro")
    parser.add_argument("--steady", type=float, default=10.0, help="seconds watched once full")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between autocompletes")
    parser.add_argument("--verbose", action="store_true", help="print the burst's progress")
    parser.add_argument("--top", type=int, default=0, help="wirobot's costliest functions")
    parser.add_argument(
        "--simcord-fallbacks",
        action="store_true",
        help="let simcord's real-time timer fallbacks settle it (its default; costly)",
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    r = asyncio.run(bench(args))
    print(
        f"burst                    {args.commands} /imagine from {args.members} members, "
        f"sent over {r['emitted_seconds']:.1f} s, all answered and shown after "
        f"{r['burst_seconds']:.1f} s ({r['burst_cpu']:.1f} s CPU)"
    )
    print(f"slots                    {args.slots}; Wiro tasks take {args.seconds:g} s")
    print(f"machine                  {os.cpu_count()} CPUs, load average {load:.2f} before the run")
    print(
        f"answered                 {r['acked']}/{args.commands}; {r['waiting']} waiting once full"
    )
    ok = r["acked"] == args.commands and not r["errors"]
    for name, title in (("burst", "during the burst"), ("full", "with the line full")):
        beats, phase = r["beats"][name], r["phases"][name]
        answers = phase["answers"]
        print(f"-- {title}")
        if beats["beats"]:
            print(
                f"status tick CPU p50/p95  {beats['total_p50'] * 1000:.1f} / "
                f"{beats['total_p95'] * 1000:.1f} ms  target < {TICK_TARGET * 1000:.0f} ms  "
                f"(max {beats['total_max'] * 1000:.1f} ms; {beats['beats']} beats)"
            )
            print(
                f"  the beat's own pass    p50 {beats['pass_p50'] * 1000:.1f} ms, "
                f"max {beats['pass_max'] * 1000:.1f} ms (places for every waiting job)"
            )
            print(f"  edits per beat         {beats['edits_per_beat']:.1f}")
        print(
            f"event-loop lag p99       {phase['lag_p99'] * 1000:.1f} ms  "
            f"target < {LAG_TARGET * 1000:.0f} ms"
        )
        if answers:
            print(
                f"autocomplete answer      p50 {statistics.median(answers) * 1000:.1f} ms, "
                f"p99 {percentile(answers, 0.99) * 1000:.1f} ms, max {max(answers) * 1000:.1f} ms"
                f"  target < {AUTOCOMPLETE_TARGET * 1000:.0f} ms  "
                f"({len(answers)}/{phase['typed']} answered)"
            )
        if name == "full":
            ok = ok and bool(beats["beats"]) and beats["total_p95"] < TICK_TARGET
            ok = ok and phase["lag_p99"] < LAG_TARGET
            ok = ok and bool(answers) and max(answers) < AUTOCOMPLETE_TARGET
            ok = ok and len(answers) == phase["typed"]
    for line in r["split"].report(args.commands, "/imagine", top=args.top):
        print(line)
    print(f"errors inside the bot    {len(r['errors'])}")
    for error in r["errors"][:3]:
        print(f"  {error}")
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
