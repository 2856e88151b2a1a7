"""Following a job's task at Wiro to its end, within the job's deadline, and recording how it
ended: images downloaded, a failure in Wiro's words, or a stopped task past the deadline."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.jobs.book import JobBook
from bot.jobs.cancelling import Canceller
from bot.jobs.events import EventKind, JobEvent
from bot.jobs.job import ErrorKind, Job, JobState
from bot.jobs.outputs import save_outputs
from bot.jobs.watch import TaskWatcher
from bot.jobs.wording import error_kind
from bot.settings import JobSettings
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import WiroError
from bot.wiro.types import WAITING_STATUSES, Task, TaskStatus

log = logging.getLogger(__name__)


class Follower:
    def __init__(
        self,
        book: JobBook,
        client: WiroClient,
        watcher: TaskWatcher,
        canceller: Canceller,
        settings: JobSettings,
        outputs_dir: Path,
        file_writer: ThreadPoolExecutor,
    ) -> None:
        self._book = book
        self._client = client
        self._watcher = watcher
        self._canceller = canceller
        self._settings = settings
        self._outputs_dir = outputs_dir
        self._file_writer = file_writer

    def deadline(self, job: Job) -> float:
        return (job.submitted_at or time.time()) + self._settings.deadline_seconds

    async def follow(self, job: Job) -> None:
        remaining = self.deadline(job) - time.time()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                task = await self._watcher.watch(job, lambda task: self.on_update(job, task))
        except TimeoutError:
            # One last look first: it may have ended meanwhile, or while the bot was down.
            last = await self._last_look(job)
            if last is not None and last.is_terminal:
                await self.complete(job, last)
            else:
                await self._expire(job)
            return
        except WiroError as exc:
            log.warning("job %s: lost track of Wiro task %s: %s", job.id, job.task_id, exc)
            await self._book.finish(job, JobState.FAILED, error=str(exc), kind=error_kind(exc))
            return
        await self.complete(job, task)

    async def _last_look(self, job: Job) -> Task | None:
        assert job.task_id is not None
        try:
            task = await self._client.task_detail(task_id=job.task_id)
        except WiroError as exc:
            log.info("job %s: last look at Wiro task %s failed: %s", job.id, job.task_id, exc)
            return None
        await self.on_update(job, task)
        return task

    async def on_update(self, job: Job, task: Task) -> None:
        if job.status.is_final:
            return
        book = self._book
        # Wiro's finer statuses are kept in memory (they pick Cancel or Kill); the store and
        # the subscribers hear only of changes of the job's own state.
        running = task.status not in WAITING_STATUSES and not task.is_terminal
        if running and job.status is not JobState.RUNNING:
            await book.set(
                job, status=JobState.RUNNING, wiro_status=task.status.value, started_at=time.time()
            )
        job.wiro_status = task.status.value
        if running and task.progress is not None and task.progress != job.progress:
            job.progress = task.progress
            book.events.publish(JobEvent(EventKind.PROGRESS, book.snapshot(job), job.progress))

    async def complete(self, job: Job, task: Task) -> None:
        book = self._book
        async with book.lock(job):
            if job.status.is_final:
                return
            if task.status is TaskStatus.CANCEL:
                await book.finish(
                    job,
                    JobState.CANCELLED,
                    task=task,
                    kind=ErrorKind.CANCELLED_AT_WIRO,
                    error="The task was cancelled at Wiro.",
                )
                return
            if task.failed:
                await book.finish(
                    job,
                    JobState.FAILED,
                    task=task,
                    kind=ErrorKind.TASK_FAILED,
                    error=task.failure_reason or "The model failed without giving a reason.",
                )
                return
            try:
                outputs = await save_outputs(
                    self._client,
                    task,
                    self._outputs_dir,
                    str(job.id),
                    max_bytes=self._settings.max_download_bytes,
                    writer=self._file_writer,
                )
            except WiroError as exc:
                await book.finish(
                    job,
                    JobState.FAILED,
                    task=task,
                    kind=ErrorKind.DOWNLOAD,
                    error=f"The images were made but could not be downloaded: {exc}",
                )
                return
            await book.finish(job, JobState.SUCCEEDED, task=task, outputs=outputs)

    async def _expire(self, job: Job) -> None:
        book = self._book
        async with book.lock(job):
            if job.status.is_final:
                return
            try:
                await self._canceller.stop_at_wiro(job)
            except WiroError as exc:
                log.warning("job %s: could not stop Wiro task %s: %s", job.id, job.task_id, exc)
            minutes = self._settings.deadline_seconds / 60
            await book.finish(
                job,
                JobState.TIMED_OUT,
                kind=ErrorKind.DEADLINE,
                error=f"Wiro did not finish within {minutes:g} minutes, so the job was stopped.",
            )
