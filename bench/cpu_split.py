"""Whose CPU is it: the event loop's thread time split between simcord (the simulated Discord,
another machine in real life), discord.py (the client library the bot really runs), wirobot's
own code and the bench's driver; plus the CPU of the process's other threads (SQLite's).

Each sample of the loop's stack is charged to the innermost frame that belongs to one of those
parts (library code such as asyncio, json or aiosqlite is charged to whoever called it); the
loop thread's measured CPU time is divided in proportion.
Statistical, like any sampler: a thousand samples per second of CPU.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = str(Path(__file__).resolve().parents[1])

SIMCORD = "simcord"
DISCORD = "discord.py"
WIROBOT = "wirobot"
DRIVER = "bench driver"
LOOP = "asyncio loop"
#: CPU of the process's threads other than the loop's: SQLite (aiosqlite), file writes.
THREADS = "wirobot threads"

#: Path parts naming whose code a frame runs, first match wins.
_OWNERS = (
    ("/site-packages/simcord/", SIMCORD),
    ("/site-packages/discord/", DISCORD),
    (ROOT + "/bot/", WIROBOT),
    (ROOT + "/cogs/", WIROBOT),
    (ROOT + "/bench/", DRIVER),
)
#: Libraries that only wirobot uses here, for frames with no owner above them (callbacks
#: straight from the loop: aiohttp's protocol for the Wiro client, aiosqlite's futures).
_WIROBOT_LIBRARIES = ("/site-packages/aiohttp/", "/site-packages/aiosqlite/")


def owner(frame: FrameType | None) -> tuple[str, str]:
    """(whose, innermost function of theirs) for a stack."""
    leaf = frame
    while frame is not None:
        filename = frame.f_code.co_filename
        for part, name in _OWNERS:
            if part in filename:
                where = filename.split(part, 1)[1]
                return name, f"{where}:{frame.f_code.co_name}"
        frame = frame.f_back
    while leaf is not None:
        filename = leaf.f_code.co_filename
        if any(part in filename for part in _WIROBOT_LIBRARIES):
            return WIROBOT, f"{Path(filename).name}:{leaf.f_code.co_name}"
        leaf = leaf.f_back
    return LOOP, ""


class CpuSplit:
    """Samples the event loop's thread between `start()` and `stop()` (call both from it).

    SIGPROF every `interval` seconds of the process's CPU time: its handler runs in the main
    thread at the next bytecode, so each sample lands where CPU was being spent (a sampler
    thread would mostly get its turn when the loop goes idle, and charge the work to the
    idle loop). Samples caught idle in the selector are CPU that other threads spent."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.by_owner: Counter[str] = Counter()  # seconds of CPU
        self.by_function: Counter[tuple[str, str]] = Counter()
        self.samples = 0
        self.wall = 0.0
        self._counts: Counter[tuple[str, str]] = Counter()
        self._idle = 0
        self._previous: Any = None

    def start(self) -> None:
        self._clock = time.pthread_getcpuclockid(threading.get_ident())
        self._process_started = time.process_time()
        self._main_started = time.clock_gettime(self._clock)
        self._wall_started = time.monotonic()
        self._previous = signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, self._previous or signal.SIG_DFL)
        self.wall = time.monotonic() - self._wall_started
        main = time.clock_gettime(self._clock) - self._main_started
        process = time.process_time() - self._process_started
        busy = sum(self._counts.values())
        for key, count in self._counts.items():
            spent = main * count / busy if busy else 0.0
            self.by_owner[key[0]] += spent
            self.by_function[key] += spent
        self.by_owner[THREADS] += max(0.0, process - main)
        self.samples = busy + self._idle

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        code = frame.f_code if frame is not None else None
        if (
            code is not None
            and code.co_name == "select"
            and code.co_filename.endswith("selectors.py")
        ):
            self._idle += 1  # another thread's CPU: the loop waits for events
            return
        self._counts[owner(frame)] += 1

    @property
    def loop_cpu(self) -> float:
        return sum(v for k, v in self.by_owner.items() if k != THREADS)

    def report(self, per: int, what: str, top: int = 0) -> list[str]:
        """Lines: each part's CPU in total and per `what` (`per` of them)."""
        total = sum(self.by_owner.values())
        lines = [
            f"CPU split over {self.wall:.1f} s ({self.samples} samples), ms per {what} ({per}):"
        ]
        for name in (SIMCORD, DISCORD, WIROBOT, THREADS, LOOP, DRIVER):
            spent = self.by_owner.get(name, 0.0)
            lines.append(
                f"  {name:<18} {spent * 1000 / max(1, per):7.2f} ms   "
                f"({spent:.2f} s, {spent / total * 100 if total else 0:4.1f} %)"
            )
        for name in (WIROBOT, DISCORD, SIMCORD) if top else ():
            lines.append(f"  {name}, top {top} (its innermost function):")
            ours = [(k, v) for k, v in self.by_function.items() if k[0] == name]
            for (_, where), spent in sorted(ours, key=lambda kv: -kv[1])[:top]:
                lines.append(f"    {spent * 1000 / max(1, per):6.3f} ms  {where}")
        return lines
