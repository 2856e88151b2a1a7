"""Dispatch: the local waiting line, our own concurrency limits, and when to send the next Run.

A job leaves the line when a slot is free for it (over all, per server, per member) and the
`WiroGate` lets a Run go; `start` then sends its Run. Waiting jobs carry, in `waiting_for`,
why Wiro's side holds them back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from bot.jobs.book import JobBook
from bot.jobs.gate import WiroGate
from bot.jobs.job import Job, JobState
from bot.jobs.waiting_line import WaitingLine
from bot.settings import JobSettings
from bot.store import GuildSettings


class Dispatcher:
    def __init__(
        self,
        book: JobBook,
        settings: JobSettings,
        start: Callable[[Job, bool], Awaitable[None]],
        gate: WiroGate | None = None,
    ) -> None:
        """`start(job, probe)` sends a job's Run; `probe` says it tests a limit of Wiro's."""
        self._book = book
        self._settings = settings
        self._start = start
        self.gate = gate or WiroGate()
        self.line = WaitingLine(book.active_by_owner)
        self._user_caps: dict[int, int] = {}  # guild -> its per-member concurrency setting
        self._told: str | None = None  # the reason waiting jobs were last given

    def learn_user_cap(self, guild: GuildSettings) -> None:
        """Remember a server's jobs-at-once per member (None: the bot's setting applies)."""
        if guild.max_concurrent_per_user is None:
            self._user_caps.pop(guild.guild_id, None)
        else:
            self._user_caps[guild.guild_id] = guild.max_concurrent_per_user

    async def enqueue(self, job: Job, *, front: bool = False) -> None:
        job.waiting_for = self._told
        if job.status is not JobState.WAITING:
            await self._book.set(job, status=JobState.WAITING)
        self.line.push(job, front=front)
        self._book.wakeup.set()

    def position(self, job_id: int) -> int | None:
        return self.line.position(job_id)

    def positions(self) -> dict[int, int]:
        return self.line.positions()

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
            self._send_what_may_go()
            self._tell_waiting()
            # Wake for a freed slot or a new job, or when the gate may open by time alone.
            delay = self.gate.next_look() if len(self.line) else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wakeup.wait()
            wakeup.clear()

    def _send_what_may_go(self) -> None:
        book = self._book
        while len(self.line):
            at_wiro = book.active
            if not self.gate.may_run(at_wiro):
                return
            if book.active >= self._settings.max_concurrent:
                return  # no slot for anyone: no need to walk the line
            job = self.line.pop_next(self._may_start)
            if job is None:
                return
            probe = self.gate.sending(at_wiro)
            job.waiting_for = None
            book.hold_slot(job)
            book.spawn(job, self._start(job, probe))

    def _tell_waiting(self) -> None:
        """Give every waiting job the gate's reason, when it changed."""
        reason = self.gate.reason(self._book.at_wiro)
        if reason == self._told:
            return
        self._told = reason
        for job in tuple(self._book.jobs.values()):
            if job.id in self.line and job.waiting_for != reason:
                job.waiting_for = reason
                self._book.publish(job)
