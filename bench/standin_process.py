"""The Wiro stand-in as a separate process, for benchmarks: Wiro is another machine in real
life, so its work should not count against the engine's event loop.

Prints one JSON line {"base_url", "api_key", "api_secret"} once listening; on a line on stdin,
prints one JSON line of statistics and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.event_loop import use_fast_loop
from tests import wiro_standin
from tests.wiro_standin import WiroStandIn


def jittered(wiro: WiroStandIn, seconds: float, jitter: float, seed: int = 1) -> None:
    """Give each new task a duration of `seconds` ± `jitter`."""
    rng = random.Random(seed)
    original = wiro._new_task

    def new_task(slug: str, inputs: dict[str, Any]) -> Any:
        task = original(slug, inputs)
        task.run_seconds = max(0.1, seconds + rng.uniform(-jitter, jitter))
        return task

    wiro._new_task = new_task  # type: ignore[method-assign]


def step_lines() -> None:
    """Make every task write one "Step n/N" line per step, as real models print a progress
    line per step (about thirty for a ten-second task), not the stand-in's six sample lines."""

    def lines(total_steps: int = 20) -> list[tuple[str, Any]]:
        steps: list[tuple[str, Any]] = [
            ("task_output", f"Step {n}/{total_steps}") for n in range(1, total_steps + 1)
        ]
        steps.insert(total_steps // 2, ("task_error", wiro_standin.STDERR_WARNING))
        return [("task_output", "Loading pipeline components..."), *steps]

    wiro_standin.progress_lines = lines


def stats(wiro: WiroStandIn) -> dict[str, Any]:
    return {
        "calls": dict(wiro.calls),
        "detail_calls": dict(wiro.detail_calls),
        "finished_at": {task_id: task.finished_at for task_id, task in wiro.tasks.items()},
    }


async def serve(seconds: float, jitter: float) -> None:
    async with WiroStandIn(run_seconds=seconds) as wiro:
        jittered(wiro, seconds, jitter)
        print(
            json.dumps(
                {
                    "base_url": wiro.base_url,
                    "socket_url": wiro.socket_url,
                    "api_key": wiro.api_key,
                    "api_secret": wiro.api_secret,
                }
            ),
            flush=True,
        )
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        print(json.dumps(stats(wiro)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--jitter", type=float, default=1.0)
    parser.add_argument("--step-lines", action="store_true", help="a progress line per step")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="asyncio")
    args = parser.parse_args()
    if args.step_lines:
        step_lines()
    if args.loop == "uvloop":
        use_fast_loop()
    asyncio.run(serve(args.seconds, args.jitter))
