"""/healthz: the bot is connected to Discord, the database answers and the loop is not stuck."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

#: How often the loop monitor beats, and how late a beat may be before the loop counts as stuck.
BEAT = 0.5
MAX_LAG = 5.0
#: How long the database may take to answer `SELECT 1`.
DATABASE_TIMEOUT = 3.0


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    checks: dict[str, str]  # part -> "ok" or what is wrong
    loop_lag: float

    def body(self) -> dict[str, object]:
        failing = [part for part, state in self.checks.items() if state != "ok"]
        return {
            "status": "ok" if self.ok else "failing",
            "failing": failing,
            "checks": self.checks,
            "loop_lag_seconds": round(self.loop_lag, 4),
        }


class LoopMonitor:
    """A task that beats every BEAT seconds; its lateness is the event loop's lag."""

    def __init__(self) -> None:
        self.lag = 0.0
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._beat(), name="wirobot-loop-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def current_lag(self) -> float:
        """The last measured lag, or longer if the monitor itself has not beaten for a while."""
        overdue = time.monotonic() - self._last - BEAT
        return max(self.lag, overdue, 0.0)

    async def _beat(self) -> None:
        while True:
            expected = time.monotonic() + BEAT
            await asyncio.sleep(BEAT)
            now = time.monotonic()
            self.lag = max(0.0, now - expected)
            self._last = now


async def check(
    *,
    discord_connected: Callable[[], bool],
    ping_database: Callable[[], Awaitable[None]],
    monitor: LoopMonitor,
) -> Health:
    checks: dict[str, str] = {}
    checks["discord"] = "ok" if discord_connected() else "not connected to Discord"
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT):
            await ping_database()
        checks["database"] = "ok"
    except TimeoutError:
        checks["database"] = f"no answer within {DATABASE_TIMEOUT:g} s"
    except Exception as exc:  # any failure of the database is the answer, not a crash
        checks["database"] = f"not answering ({type(exc).__name__})"
    lag = monitor.current_lag()
    checks["event_loop"] = "ok" if lag < MAX_LAG else f"{lag:.1f} s behind"
    return Health(all(v == "ok" for v in checks.values()), checks, lag)
