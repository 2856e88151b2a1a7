"""Dispatch: the local waiting line, our own concurrency limits, and when to send the next Run.

A job leaves the line when a slot is free for it (over all, per server, per member) and Wiro
is not known to be full; `start` then sends its Run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from bot.jobs.book import JobBook
from bot.jobs.job import Job, JobState
from bot.jobs.waiting_line import WaitingLine
from bot.settings import JobSettings
from bot.store import GuildSettings


class Dispatcher:
    def __init__(
        self,
        book: JobBook,
        settings: JobSettings,
        start: Callable[[Job], Awaitable[None]],
    ) -> None:
        self._book = book
        self._settings = settings
        self._start = start
        self.line = WaitingLine(lambda owner: book.active_by_owner[owner])  # type: ignore[index]
        self._user_caps: dict[int, int] = {}  # guild -> its per-member concurrency setting
        self.wiro_full_until = 0.0  # after code 96: no Run before this, or a slot frees
        self.wiro_backoff = 1.0

    def learn_user_cap(self, guild: GuildSettings) -> None:
        """Remember a server's jobs-at-once per member (None: the bot's setting applies)."""
        if guild.max_concurrent_per_user is None:
            self._user_caps.pop(guild.guild_id, None)
        else:
            self._user_caps[guild.guild_id] = guild.max_concurrent_per_user

    async def enqueue(self, job: Job, *, front: bool = False) -> None:
        if job.status is not JobState.WAITING:
            await self._book.set(job, status=JobState.WAITING)
        self.line.push(job, front=front)
        self._book.wakeup.set()

    def position(self, job_id: int) -> int | None:
        return self.line.position(job_id)

    def _may_start(self, job: Job) -> bool:
        book = self._book
        if book.active >= self._settings.max_concurrent:
            return False
        if book.active_by_guild[job.guild_id] >= self._settings.max_concurrent_per_guild:
            return False
        per_user = self._settings.max_concurrent_per_user
        if job.guild_id is not None and job.guild_id in self._user_caps:
            per_user = self._user_caps[job.guild_id]
        return book.active_by_owner[(job.guild_id, job.user_id)] < per_user

    async def run(self) -> None:
        wakeup = self._book.wakeup
        while True:
            await wakeup.wait()
            wakeup.clear()
            while True:
                wait = self.wiro_full_until - time.monotonic()
                if wait > 0:
                    # Wiro said it is full: wait for a slot to free or the back-off to pass.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await wakeup.wait()
                    wakeup.clear()
                    self.wiro_full_until = 0.0
                    continue
                job = self.line.pop_next(self._may_start)
                if job is None:
                    break
                self._book.hold_slot(job)
                self._book.spawn(job, self._start(job))
