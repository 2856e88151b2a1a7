"""The event loop every entry point runs on.

uvloop (libuv under asyncio's interface) when it is installed: with thousands of jobs the
engine's CPU goes mostly to the event loop's own work per socket event (a WebSocket per task,
a progress line per step), which uvloop does several times cheaper. asyncio's own loop
otherwise; the code runs the same on both.
"""

from __future__ import annotations

import asyncio


def use_fast_loop() -> str:
    """Make `asyncio.run` use uvloop if it is installed; the name of the loop in use."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, absent only on Windows
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
