"""Burst benchmark: ten thousand /imagine from two thousand members, eight slots, through the
simulated Discord (simcord) into the real WiroBot, with the Wiro stand-in behind it.

    python bench/burst_bench.py [--commands 10000] [--members 2000] [--rate auto]
                                [--load 0.5] [--calibrate 1000] [--slots 8]
                                [--seconds 120] [--steady 10] [--top 0]

Prints, for the burst and then for the full waiting line that it leaves: the CPU time of one
status tick, the event-loop lag p99 and how long the bot takes to answer an autocomplete,
against the targets: a tick under 20 ms of CPU, loop lag p99 under 50 ms, autocomplete
answered within 100 ms (p99); and whose CPU one /imagine costs.

How it is measured
------------------
- Whose CPU: the event loop's CPU is sampled (`bench/cpu_split.py`) and split between simcord
  (the simulated Discord: another machine in real life), discord.py (the client library the
  bot really runs), wirobot's own code, and the bench's driver; the CPU of the process's other
  threads (SQLite's) is wirobot's too. Bot side = discord.py + wirobot (+ its threads);
  Discord side = simcord + the driver.
- The arrival rate: simcord shares the bot's loop, so in one process each /imagine costs the
  loop both sides. `--rate auto` first sends `--calibrate` commands at a gentle rate
  (`--calibration-rate`), measures both sides' CPU per /imagine, and derives the rate the bot
  alone sustains with its own work taking `--load` of one core, and the rate this one process
  sustains at that load with simcord's work on the same loop. The burst goes at the lower of
  the two; when that is simcord's, the bench says so: loop lag at the bot-alone rate cannot be
  measured in one process. `--rate N` sends N per second instead (the old bench sent 333 per
  second, more than the process can carry, and measured its own backlog).
- The burst: `commands` /imagine from `members` members in turn (one server), delivered as
  `bench/discord_bench.py` delivers them. Tasks take `seconds` at Wiro, long enough that the
  line stays full: with `slots` slots almost every job waits.
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
- simcord answers in-process, at once, with no rate limits. Its virtual clock is moved by a
  pump every 5 ms, which alone fires the bot's timers (see `pumped_timers_only`;
  `--simcord-fallbacks` restores simcord's real-time fallbacks, which settle simcord and cost
  the loop more as the bot's tasks grow). The machine matters: the load average before the
  run is printed, and wall-clock figures on a shared machine are noisy; CPU per /imagine is
  the steadier figure.
- Only `SimcordDiscord` knows simcord: to drive another Discord (a stand-in server in its own
  process), give `drive` an object with the same methods.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import types
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

from bench.cpu_split import DISCORD, DRIVER, LOOP, SIMCORD, THREADS, WIROBOT, CpuSplit
from bench.discord_bench import (
    REAL_MONOTONIC,
    Recorder,
    emit_slash,
    pump_clock,
    pumped_timers_only,
)
from bench.engine_bench import percentile, standin
from bot.discord_bot import WiroBot
from bot.event_loop import settle_heap
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


class SimcordDiscord:
    """The Discord the burst goes through: simcord, in this process, sharing the bot's loop.
    The bench drives it through these methods alone."""

    def __init__(self, bot: WiroBot, *, fallbacks: bool = False) -> None:
        self.bot = bot
        self.recorder = Recorder()
        self.env = simcord.Env(bot, settle_timeout=600.0, shard_count=1)
        if not fallbacks:
            pumped_timers_only(self.env)
        self.clock_lag: list[float] = []
        self._people: list[MemberActor] = []
        self._stop = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SimcordDiscord:
        self.recorder.install()
        try:
            await self.env.start()
        except BaseException:
            self.recorder.uninstall()
            raise
        # As `wirobot run` does at start (bot/discord_bot.py).
        settle_heap()
        guild = self.env.create_guild("Burst")
        self._channel = guild.create_text_channel("art")
        self._guild = guild
        self._pump = asyncio.create_task(pump_clock(self.env, self._stop, self.clock_lag))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)
        try:
            await self.env.shutdown()
        finally:
            self.recorder.uninstall()

    def add_members(self, count: int) -> None:
        start = len(self._people)
        for n in range(start, start + count):
            self._people.append(self._guild.add_member(self.env.create_user(f"member{n}")))

    def imagine(self, member: int, prompt: str) -> int:
        """Member number `member` runs /imagine; the interaction's id."""
        interaction_id, _ = emit_slash(
            self._people[member % len(self._people)], self._channel, "imagine", prompt=prompt
        )
        return interaction_id

    def type_model(self, member: int, text: str) -> tuple[int, float]:
        """Member number `member` types into /imagine's model option: (id, when)."""
        return emit_autocomplete(
            self._people[member % len(self._people)], self._channel, "imagine", "model", text
        )

    def answered(self) -> dict[int, float]:
        """When the bot first answered each interaction (its id -> time.monotonic())."""
        return self.recorder.acked

    def commands_answered(self) -> int:
        return sum(1 for k in self.recorder.ack_kind.values() if k != AUTOCOMPLETE_RESULT)

    def errors(self) -> list[str]:
        return [repr(error)[:300] for error in self.env.errors]


class Phase:
    """What was measured while one phase lasted."""

    def __init__(self) -> None:
        self.lag: list[float] = []
        self.gc_pauses: list[float] = []  # full (generation 2) collections, seconds
        self.typed: dict[int, float] = {}  # autocomplete interaction id -> typed at
        self.beats: dict[str, float] = {"beats": 0}
        self.split: CpuSplit | None = None
        self.commands = 0
        self.rate = 0.0

    def answers(self, answered: dict[int, float]) -> list[float]:
        return [answered[i] - at for i, at in self.typed.items() if i in answered]


class GcPauses:
    """How long each full garbage collection stopped the loop (its CPU time: on a busy
    machine the wall clock adds other processes' turns), into the current phase."""

    def __init__(self, sink: Callable[[], list[float]]) -> None:
        self._sink = sink
        self._started = 0.0

    def __call__(self, stage: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if stage == "start":
            self._started = time.thread_time()
        else:
            self._sink().append(time.thread_time() - self._started)


async def measure_lag(sink: Callable[[], list[float]], stop: asyncio.Event) -> None:
    """How late a 20 ms sleep wakes up, into the current phase's samples."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.02)
        sink().append(loop.time() - before - 0.02)


async def type_now_and_then(
    discord: SimcordDiscord, every: float, phase: Callable[[], Phase], stop: asyncio.Event
) -> None:
    n = 0
    while not stop.is_set():
        await asyncio.sleep(every)
        interaction_id, at = discord.type_model(n, "ars")
        phase().typed[interaction_id] = at
        n += 1


async def send_at(discord: SimcordDiscord, first: int, count: int, rate: float) -> None:
    """/imagine number first .. first+count-1, `rate` per second, from the members in turn."""
    started = REAL_MONOTONIC()
    for k in range(count):
        wait = started + k / rate - REAL_MONOTONIC()
        if wait > 0:
            await asyncio.sleep(wait)
        discord.imagine(first + k, prompt=f"burst {first + k}")
        await asyncio.sleep(0)  # let the bot start on it, as Discord's gateway would


async def settled(discord: SimcordDiscord, runtime: Runtime, bot: Any, commands: int) -> None:
    """Until `commands` are answered, stored and shown, or nothing moved for 20 s."""
    seen, since = None, REAL_MONOTONIC()
    targets = bot.updater._targets
    while REAL_MONOTONIC() - since < 20:
        answered = discord.commands_answered()
        ready = sum(1 for t in targets.values() if t.ready)
        stored = 0  # counted in the database only at the end: a count costs the bot's thread
        if answered >= commands and ready == len(targets):
            stored = await runtime.store.jobs.count_history(HistoryQuery())
        if answered >= commands and stored >= commands and ready == len(targets):
            return
        if (answered, stored, ready) != seen:
            seen, since = (answered, stored, ready), REAL_MONOTONIC()
        await asyncio.sleep(0.2)


def sides(split: CpuSplit, commands: int) -> tuple[float, float]:
    """(bot side, Discord side) CPU seconds per /imagine."""
    spent = split.by_owner
    bot_side = spent[DISCORD] + spent[WIROBOT] + spent[THREADS] + spent[LOOP]
    return bot_side / max(1, commands), (spent[SIMCORD] + spent[DRIVER]) / max(1, commands)


async def drive(
    discord: SimcordDiscord, bot: Any, runtime: Runtime, args: argparse.Namespace
) -> dict[str, Any]:
    discord.add_members(args.members)
    meter = TickMeter(bot.updater)
    meter.recording = True
    phases = {"calibration": Phase(), "burst": Phase(), "full": Phase()}
    current = phases["burst"]

    stop, stop_typing = asyncio.Event(), asyncio.Event()
    lag_task = asyncio.create_task(measure_lag(lambda: current.lag, stop))
    gc_pauses = GcPauses(lambda: current.gc_pauses)
    gc.callbacks.append(gc_pauses)
    typing = asyncio.create_task(
        type_now_and_then(discord, args.every, lambda: current, stop_typing)
    )
    started = REAL_MONOTONIC()
    cpu_started = time.process_time()
    rate: float = 0.0
    derived: dict[str, float] = {}
    try:
        sent = 0
        if args.rate == "auto":
            current = phases["calibration"]
            sent = min(args.calibrate, args.commands)
            current.commands, current.rate = sent, args.calibration_rate
            current.split = CpuSplit()
            current.split.start()
            await send_at(discord, 0, sent, args.calibration_rate)
            await settled(discord, runtime, bot, sent)
            current.split.stop()
            current.beats = meter.summary()
            meter.beats.clear()
            bot_side, discord_side = sides(current.split, sent)
            derived = {
                "bot_side": bot_side,
                "discord_side": discord_side,
                "bot_alone": args.load / bot_side,
                "one_process": args.load / (bot_side + discord_side),
            }
            rate = min(derived["bot_alone"], derived["one_process"])
        else:
            rate = float(args.rate)
        current = phases["burst"]
        current.commands, current.rate = args.commands - sent, rate
        current.split = CpuSplit()
        current.split.start()
        await send_at(discord, sent, args.commands - sent, rate)
        emitted = REAL_MONOTONIC() - started
        await settled(discord, runtime, bot, args.commands)
        current.split.stop()
        current.beats = meter.summary()
        burst = REAL_MONOTONIC() - started
        burst_cpu = time.process_time() - cpu_started
        waiting = len(runtime.engine.queue_positions())
        # The full line: only the ticker and the autocompletes from here on.
        meter.beats.clear()
        current = phases["full"]
        await asyncio.sleep(args.steady)
        current.beats = meter.summary()
        stop_typing.set()
        await asyncio.sleep(0.5)  # the last autocomplete's answer
    finally:
        stop.set()
        stop_typing.set()
        await asyncio.gather(lag_task, typing, return_exceptions=True)
        gc.callbacks.remove(gc_pauses)
    jobs = runtime.engine._book.jobs.values()
    return {
        "emitted_seconds": emitted,
        "burst_seconds": burst,
        "burst_cpu": burst_cpu,
        "rate": rate,
        "derived": derived,
        "acked": discord.commands_answered(),
        "waiting": waiting,
        "at_wiro": sum(
            1 for job in jobs if not job.status.is_local and job.status is not JobState.SUCCEEDED
        ),
        "phases": phases,
        "answered": discord.answered(),
        "errors": discord.errors(),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
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
                web={"port": 0},  # no web server: not part of the burst, and 8080 may be taken
                jobs={"max_concurrent": args.slots, "max_concurrent_per_guild": args.slots},
            )
            async with open_runtime(settings) as runtime:
                bot = WiroBot(settings, runtime=runtime)
                async with SimcordDiscord(bot, fallbacks=args.simcord_fallbacks) as discord:
                    result = await drive(discord, bot, runtime, args)
                    result["gc"] = full_collection()
                    book = runtime.engine._book
                    result["held"] = {
                        "simcord": held([discord.env.backend], without=[bot, runtime]),
                        "engine": held([book.jobs, book._locks, runtime.engine._dispatcher.line]),
                        "updater": held([bot.updater._targets]),
                        "discord.py": held([bot._connection], without=[discord.env.backend]),
                    }
                return result


def full_collection() -> tuple[float, int]:
    """(CPU seconds, objects the collector walks) of one full garbage collection now."""
    started = time.thread_time()
    gc.collect()
    return time.thread_time() - started, len(gc.get_objects())


def held(roots: list[Any], without: list[Any] = ()) -> int:  # type: ignore[assignment]
    """How many objects the collector walks that `roots` hold (not through `without`, nor
    modules, classes and functions: the program's own world)."""
    seen = {id(o) for o in without}
    skip = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)
    todo, count = list(roots), 0
    while todo:
        item = todo.pop()
        if id(item) in seen or isinstance(item, skip):
            continue
        seen.add(id(item))
        count += gc.is_tracked(item)
        todo.extend(gc.get_referents(item))
    return count


def print_phase(phase: Phase, answered: dict[int, float], top: int) -> bool:
    """The phase's figures; whether its lag and autocomplete targets were met."""
    beats, answers = phase.beats, phase.answers(answered)
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
    lag = percentile(phase.lag, 0.99) if phase.lag else float("nan")
    print(f"event-loop lag p99       {lag * 1000:.1f} ms  target < {LAG_TARGET * 1000:.0f} ms")
    if phase.gc_pauses:
        longest = max(phase.gc_pauses)
        print(
            f"  full GC pauses         {len(phase.gc_pauses)}, longest {longest * 1000:.0f} ms CPU"
            + ("  (over the lag target: see whose objects, below)" if longest > LAG_TARGET else "")
        )
    p99 = percentile(answers, 0.99) if answers else float("nan")
    if answers:
        print(
            f"autocomplete answer      p50 {statistics.median(answers) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms  target < {AUTOCOMPLETE_TARGET * 1000:.0f} ms  "
            f"(max {max(answers) * 1000:.1f} ms; {len(answers)}/{len(phase.typed)} answered)"
        )
    if phase.split is not None:
        bot_side, discord_side = sides(phase.split, phase.commands)
        print(
            f"CPU per /imagine         bot side {bot_side * 1000:.2f} ms, "
            f"Discord side {discord_side * 1000:.2f} ms"
        )
        for line in phase.split.report(phase.commands, "/imagine", top=top):
            print(f"  {line}")
    return (
        lag < LAG_TARGET
        and bool(answers)
        and p99 < AUTOCOMPLETE_TARGET
        and len(answers) == len(phase.typed)
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=2_000)
    parser.add_argument(
        "--rate", default="auto", help="/imagine per second, or auto (derived from the CPU)"
    )
    parser.add_argument(
        "--load", type=float, default=0.5, help="share of one core the bot's work may take (auto)"
    )
    parser.add_argument("--calibrate", type=int, default=1_000, help="commands to measure (auto)")
    parser.add_argument("--calibration-rate", type=float, default=50.0, help="their rate (auto)")
    parser.add_argument("--slots", type=int, default=8, help="jobs.max_concurrent")
    parser.add_argument("--seconds", type=float, default=120.0, help="task duration at Wiro")
    parser.add_argument("--steady", type=float, default=10.0, help="seconds watched once full")
    parser.add_argument("--every", type=float, default=0.25, help="seconds between autocompletes")
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
        f"sent in {r['emitted_seconds']:.1f} s, all answered and shown after "
        f"{r['burst_seconds']:.1f} s ({r['burst_cpu']:.1f} s CPU in the process)"
    )
    print(f"slots                    {args.slots}; Wiro tasks take {args.seconds:g} s")
    print(f"machine                  {os.cpu_count()} CPUs, load average {load:.2f} before the run")
    derived = r["derived"]
    if derived:
        print(
            f"calibration              {args.calibrate} /imagine at {args.calibration_rate:g}/s: "
            f"bot side {derived['bot_side'] * 1000:.2f} ms CPU each, Discord side (simcord) "
            f"{derived['discord_side'] * 1000:.2f} ms"
        )
        print(
            f"sustained at {args.load:.0%} of a core  the bot alone {derived['bot_alone']:.0f}/s; "
            f"with simcord on its loop {derived['one_process']:.0f}/s"
        )
        if derived["one_process"] < derived["bot_alone"]:
            share = derived["bot_alone"] * (derived["bot_side"] + derived["discord_side"])
            print(
                f"  at {derived['bot_alone']:.0f}/s this one process would need {share:.0%} of a "
                "core (simcord's share is another machine's in real life): loop lag at the "
                f"bot-alone rate is not measurable here; the burst goes at "
                f"{derived['one_process']:.0f}/s"
            )
    print(f"arrival rate             {r['rate']:.0f} /imagine per second ({args.rate})")
    print(
        f"answered                 {r['acked']}/{args.commands}; {r['waiting']} waiting once full"
    )
    ok = r["acked"] == args.commands and not r["errors"]
    titles = {
        "calibration": "calibration (part of the burst)",
        "burst": "during the burst",
        "full": "with the line full",
    }
    for name, phase in r["phases"].items():
        if name == "calibration" and not derived:
            continue
        print(f"-- {titles[name]}")
        met = print_phase(phase, r["answered"], args.top)
        ok = ok and met
        if name == "full":
            beats = phase.beats
            ok = ok and bool(beats["beats"]) and beats["total_p95"] < TICK_TARGET
    spent, walked = r["gc"]
    held_by = ", ".join(f"{name} {count:,}" for name, count in r["held"].items())
    print(
        f"a full GC, line full     {spent * 1000:.0f} ms CPU over {walked:,} objects "
        f"({spent / walked * 1e6:.2f} us each; frozen at start not counted)"
    )
    print(f"  objects held by        {held_by}")
    bot_held = sum(count for name, count in r["held"].items() if name != "simcord")
    print(
        f"  the bot's own          {bot_held:,} objects: a full GC of about "
        f"{spent / walked * bot_held * 1000:.0f} ms in a process without simcord's"
    )
    print(f"errors inside the bot    {len(r['errors'])}")
    for error in r["errors"][:3]:
        print(f"  {error}")
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
