"""SIGTERM while a job runs: the bot stops taking jobs, keeps the running one in the database
for the next start, and closes its connections."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import ClassVar

from bot.discord_bot import WiroBot, _run
from bot.jobs.engine import JobRefused, JobRequest
from bot.jobs.job import JobState, Requester
from bot.settings import load_settings
from bot.store import Store
from tests.wiro_standin import WiroStandIn


class OfflineBot(WiroBot):
    """The real bot with Discord's network cut: logging in runs only the setup hook (the
    runtime, cogs, buttons), and the gateway never answers."""

    started: ClassVar[list[WiroBot]] = []
    ready: ClassVar[asyncio.Event]

    async def login(self, token: str) -> None:
        await self._async_setup_hook()
        await self.setup_hook()
        OfflineBot.started.append(self)
        OfflineBot.ready.set()

    async def connect(self, *, reconnect: bool = True) -> None:
        await asyncio.Event().wait()

    async def sync_commands(self) -> None:
        pass


async def test_sigterm_keeps_the_running_job_for_the_next_start(
    wiro: WiroStandIn, tmp_path: Path
) -> None:
    wiro.hold()
    database = tmp_path / "wirobot.db"
    settings = load_settings(
        None,
        discord={"token": "not-used"},
        wiro={
            "api_key": wiro.api_key,
            "api_secret": wiro.api_secret,
            "base_url": wiro.base_url,
            "socket_url": wiro.socket_url,
        },
        database={"path": database},
        web={"port": 0},
    )
    OfflineBot.started.clear()
    OfflineBot.ready = asyncio.Event()
    running = asyncio.create_task(_run(settings, "not-used", OfflineBot))
    async with asyncio.timeout(10):
        await OfflineBot.ready.wait()
        bot = OfflineBot.started[0]
        engine = bot.runtime.engine
        with engine.subscribe() as events:
            job = await engine.submit(
                JobRequest(prompt="a harbour at night", requester=Requester(user_id=1, guild_id=2))
            )
            while (await events.get()).job.status is not JobState.QUEUED:
                pass

        os.kill(os.getpid(), signal.SIGTERM)
        assert await running == 0

    assert bot.is_closed()
    try:
        await engine.submit(JobRequest(prompt="too late", requester=Requester(user_id=1)))
    except JobRefused as refused:
        assert "shutting down" in str(refused)
    else:
        raise AssertionError("a closed engine took a job")
    async with await Store.open(database) as store:
        kept = await store.jobs.get(job.id)
    assert kept is not None and kept.status is JobState.QUEUED and kept.task_id is not None
    assert wiro.calls["cancel"] == 0 and wiro.calls["kill"] == 0
