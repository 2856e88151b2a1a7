"""Cancelling a job, and stopping its task at Wiro for good.

Task/Cancel while the task waits, Task/Kill once a worker has it. The answer carries the task
(status task_cancel, and a `totalcost` that can be non-zero): its cost is recorded. An answer
that was lost or refused is not taken as a failure: Task/Detail tells how the task stands.
No job is marked cancelled while its task may still run at Wiro.
"""

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
from bot.wiro.types import WAITING_STATUSES, Task, TaskStatus

log = logging.getLogger(__name__)


class CancelOutcome(StrEnum):
    DROPPED = "dropped"  # it had not reached Wiro: removed, no Wiro call
    CANCELLED = "cancelled"  # queued at Wiro: Task/Cancel
    KILLED = "killed"  # running at Wiro: Task/Kill
    PENDING = "pending"  # Run in flight: cancelled as soon as Wiro answers
    ASKED = "asked"  # another process follows it at Wiro: asked to stop it there
    ALREADY_FINISHED = "already_finished"
    NOT_FOUND = "not_found"
    FAILED = "failed"  # Wiro did not take the cancel; the job goes on


@dataclass(frozen=True, slots=True)
class CancelResult:
    outcome: CancelOutcome
    job: Job | None
    detail: str = ""


class StillRunning(WiroError):
    """Wiro did not stop the task, or could not tell whether it did."""


class Canceller:
    def __init__(self, book: JobBook, client: WiroClient, line: WaitingLine) -> None:
        self._book = book
        self._client = client
        self._line = line

    async def stop(self, job: Job) -> tuple[CancelOutcome, Task]:
        """Stop the job's task at Wiro and make sure it stopped. Returns how, and the task as
        Wiro then shows it: ended (task_cancel, or ended on its own meanwhile). Raises
        `WiroError` (`StillRunning`) when it may still be running."""
        assert job.task_id is not None
        waiting = job.wiro_status is None or TaskStatus(job.wiro_status) in WAITING_STATUSES
        outcome = CancelOutcome.CANCELLED if waiting else CancelOutcome.KILLED
        answer: Task | None = None
        if waiting:
            try:
                answer = await self._client.cancel_task(job.task_id)
            except WiroError as exc:
                # It may have started meanwhile (Kill is then the answer), or the answer
                # was lost on the way.
                log.info("job %s: Task/Cancel not answered (%s); trying Task/Kill", job.id, exc)
        if answer is None or not answer.is_terminal:
            outcome = CancelOutcome.KILLED
            try:
                answer = await self._client.kill_task(job.task_id)
            except WiroError as exc:
                log.info("job %s: Task/Kill not answered (%s); asking Wiro", job.id, exc)
        if answer is not None and answer.is_terminal:
            return outcome, answer
        # Refused, lost, or not yet ended: only Task/Detail can tell.
        task = await self._client.task_detail(task_id=job.task_id)
        if task.is_terminal:
            return (CancelOutcome.CANCELLED if waiting else outcome), task
        raise StillRunning(
            f"Wiro did not stop task {job.task_id}; it is still {task.status.value}."
        )

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
            await book.set(job, cancel_requested=True)
            if job.task_id is None:
                return CancelResult(CancelOutcome.PENDING, book.snapshot(job))
            try:
                outcome, task = await self.stop(job)
            except WiroError as exc:
                log.warning("job %s: cancel failed: %s", job.id, exc)
                return CancelResult(CancelOutcome.FAILED, book.snapshot(job), str(exc))
            if task.status is not TaskStatus.CANCEL:
                # It ended on its own first: its follower records how.
                log.info("job %s: task %s ended before the cancel", job.id, job.task_id)
                return CancelResult(CancelOutcome.ALREADY_FINISHED, book.snapshot(job))
            follower = book.tasks.get(job.id)
            if follower is not None and follower is not asyncio.current_task():
                follower.cancel()
            await book.finish(job, JobState.CANCELLED, task=task)
            return CancelResult(outcome, book.snapshot(job))
