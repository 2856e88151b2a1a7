"""The event loop every entry point runs on.

uvloop (libuv under asyncio's interface) when it is installed: with thousands of jobs the
engine's CPU goes mostly to the event loop's own work per socket event (a WebSocket per task,
a progress line per step), which uvloop does several times cheaper. asyncio's own loop
otherwise; the code runs the same on both.

And the garbage collector set for a long-lived server (`settle_heap`).
"""

from __future__ import annotations

import asyncio
import gc

#: Container allocations between two young collections (Python's default: 700). A followed
#: task allocates thousands of short-lived containers, nearly none of them in cycles; at
#: 700, five thousand tasks made the collector a quarter of the engine's CPU, most of it in
#: older generations walked again and again. Fifty thousand keeps young collections cheap
#: and rare; full ones still run, and memory stays within a few MB of the default's.
YOUNG_THRESHOLD = 50_000


def use_fast_loop() -> str:
    """Make `asyncio.run` use uvloop if it is installed; the name of the loop in use."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, absent only on Windows
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def settle_heap() -> None:
    """Call once start-up is done, before the work: what start-up built (modules, classes,
    the libraries' tables) lives as long as the process, so it is moved out of the
    collector's sight (a full collection then walks only the jobs and what came after), and
    young collections are made rarer (see `YOUNG_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, max(middle, 20), max(old, 100))
