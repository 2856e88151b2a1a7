"""Cancelling a job, and stopping its task at Wiro (Task/Cancel while queued, Task/Kill once
a worker has it)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from enum import StrEnum

from bot.jobs.book import JobBook
from bot.jobs.job import Job, JobState
from bot.jobs.waiting_line import WaitingLine
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import WiroError
from bot.wiro.types import WAITING_STATUSES, TaskStatus

log = logging.getLogger(__name__)


class CancelOutcome(StrEnum):
    DROPPED = "dropped"  # it had not reached Wiro: removed, no Wiro call
    CANCELLED = "cancelled"  # queued at Wiro: Task/Cancel
    KILLED = "killed"  # running at Wiro: Task/Kill
    PENDING = "pending"  # Run in flight: cancelled as soon as Wiro answers
    ALREADY_FINISHED = "already_finished"
    NOT_FOUND = "not_found"
    FAILED = "failed"  # Wiro did not take the cancel; the job goes on


@dataclass(frozen=True, slots=True)
class CancelResult:
    outcome: CancelOutcome
    job: Job | None
    detail: str = ""


class Canceller:
    def __init__(self, book: JobBook, client: WiroClient, line: WaitingLine) -> None:
        self._book = book
        self._client = client
        self._line = line

    async def stop_at_wiro(self, job: Job) -> CancelOutcome:
        """Task/Cancel while queued, Task/Kill once a worker has it."""
        assert job.task_id is not None
        waiting = job.wiro_status is None or TaskStatus(job.wiro_status) in WAITING_STATUSES
        if waiting:
            try:
                await self._client.cancel_task(job.task_id)
                return CancelOutcome.CANCELLED
            except WiroError as exc:
                # It may have started meanwhile: Kill is the answer for a running task.
                log.info("job %s: Task/Cancel refused (%s); trying Task/Kill", job.id, exc)
        await self._client.kill_task(job.task_id)
        return CancelOutcome.KILLED

    async def cancel(self, job_id: int) -> CancelResult:
        book = self._book
        job = book.jobs.get(job_id)
        if job is None:
            stored = await book.store.jobs.get(job_id)
            if stored is None:
                return CancelResult(CancelOutcome.NOT_FOUND, None)
            return CancelResult(CancelOutcome.ALREADY_FINISHED, stored)
        async with book.lock(job):
            if job.status.is_final:
                return CancelResult(CancelOutcome.ALREADY_FINISHED, book.snapshot(job))
            if job.status.is_local:
                self._line.remove(job.id)
                await book.finish(job, JobState.CANCELLED, slot_held=False)
                return CancelResult(CancelOutcome.DROPPED, book.snapshot(job))
            if job.task_id is None:
                await book.set(job, cancel_requested=True)
                return CancelResult(CancelOutcome.PENDING, book.snapshot(job))
            await book.set(job, cancel_requested=True)
            try:
                outcome = await self.stop_at_wiro(job)
            except WiroError as exc:
                log.warning("job %s: cancel failed: %s", job.id, exc)
                return CancelResult(CancelOutcome.FAILED, book.snapshot(job), str(exc))
            follower = book.tasks.get(job.id)
            if follower is not None and follower is not asyncio.current_task():
                follower.cancel()
            await book.finish(job, JobState.CANCELLED, wiro_status=TaskStatus.CANCEL.value)
            return CancelResult(outcome, book.snapshot(job))
