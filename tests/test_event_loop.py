"""The bot and the CLI run on uvloop when it is installed (it is a dependency)."""

from __future__ import annotations

import asyncio

from bot.event_loop import use_fast_loop


def test_the_wirobot_command_runs_its_work_on_uvloop() -> None:
    before = asyncio.get_event_loop_policy()
    try:
        assert use_fast_loop() == "uvloop"

        async def loop_module() -> str:
            return type(asyncio.get_running_loop()).__module__

        assert asyncio.run(loop_module()).startswith("uvloop")
    finally:
        asyncio.set_event_loop_policy(before)
