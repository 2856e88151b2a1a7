"""Following a job's task at Wiro to its end, within the job's deadline, and recording how it
ended: images downloaded, a failure in Wiro's words, or a task stopped at the deadline.

Wiro trouble while following (errors, HTTP 429, "There is no task yet.") is not a failure: the
job looks again until its deadline. `task_error` is not a failure by itself either: the job
fails only once the task has ended, or when the state persists past a grace period; and no
job is marked failed or timed out before its task is known to have stopped at Wiro.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from bot.jobs.book import JobBook
from bot.jobs.cancelling import Canceller
from bot.jobs.events import EventKind, JobEvent
from bot.jobs.file_writer import FileWriter
from bot.jobs.job import ErrorKind, Job, JobState
from bot.jobs.outputs import save_outputs
from bot.jobs.watch import TaskWatcher
from bot.jobs.wording import duration_words
from bot.settings import JobSettings
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import WiroError
from bot.wiro.types import TERMINAL_STATUSES, WAITING_STATUSES, Task, TaskProgress, TaskStatus

log = logging.getLogger(__name__)

#: Progress is announced when it moved by this fraction, or this many seconds after the last
#: announcement, or when it reaches the end; the job always holds the latest.
PROGRESS_STEP = 0.1
PROGRESS_EVERY = 1.0

#: Pauses between attempts to stop a task that must not be left running (seconds).
STOP_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class Follower:
    def __init__(
        self,
        book: JobBook,
        client: WiroClient,
        watcher: TaskWatcher,
        canceller: Canceller,
        settings: JobSettings,
        outputs_dir: Path,
        file_writer: FileWriter,
    ) -> None:
        self._book = book
        self._client = client
        self._watcher = watcher
        self._canceller = canceller
        self._settings = settings
        self._outputs_dir = outputs_dir
        self._file_writer = file_writer
        #: Seconds a task may show task_error without ending before the job gives up on it.
        self.error_grace = settings.task_error_grace_seconds
        self.stop_pauses = STOP_PAUSES
        # Per job being followed: its timeout, and since when (loop time) it shows task_error.
        self._timeouts: dict[int, asyncio.Timeout] = {}
        self._error_since: dict[int, float] = {}
        #: Per job being followed: when (monotonic) and at what fraction progress was told.
        self._progress_told: dict[int, tuple[float, float]] = {}

    def deadline(self, job: Job) -> float:
        return (job.submitted_at or time.time()) + self._settings.deadline_seconds

    async def follow(self, job: Job) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.deadline(job) - time.time(), 0.0)
        try:
            try:
                async with asyncio.timeout_at(deadline) as timeout:
                    self._timeouts[job.id] = timeout
                    task = await self._watch(job)
            except TimeoutError:
                await self._out_of_time(job, errored=job.id in self._error_since)
                return
            await self.complete(job, task)
        finally:
            self._timeouts.pop(job.id, None)
            self._error_since.pop(job.id, None)
            self._progress_told.pop(job.id, None)

    async def _watch(self, job: Job) -> Task:
        """The watcher, again after Wiro trouble: only the deadline ends this."""
        failures = 0
        while True:
            try:
                return await self._watcher.watch(
                    job,
                    lambda task: self.on_update(job, task),
                    lambda status, progress: self.change_at_once(job, status, progress),
                )
            except WiroError as exc:
                failures += 1
                pause = min(self._settings.poll_max_interval * failures, 60.0)
                log.warning(
                    "job %s: lost track of Wiro task %s (%s); looking again in %.0f s",
                    job.id,
                    job.task_id,
                    exc,
                    pause,
                )
                await asyncio.sleep(pause)

    async def _out_of_time(self, job: Job, *, errored: bool) -> None:
        # One last look first: it may have ended meanwhile, or while the bot was down.
        last = await self._last_look(job)
        if last is not None and last.is_terminal:
            await self.complete(job, last)
        elif errored and (last is None or last.status is TaskStatus.ERROR):
            await self._give_up_on_error(job, last)
        else:
            await self._expire(job)

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
        status = task.status
        if status is TaskStatus.ERROR or job.id in self._error_since:
            self._note_error(job, task)
        # Wiro's finer statuses are kept in memory (they pick Cancel or Kill); the store and
        # the subscribers hear only of changes of the job's own state.
        running = status not in WAITING_STATUSES and not task.is_terminal
        if running and job.status is not JobState.RUNNING:
            await book.set(
                job, status=JobState.RUNNING, wiro_status=status.value, started_at=time.time()
            )
        self._note(job, status, task.progress if running else None)

    def change_at_once(self, job: Job, status: TaskStatus, progress: TaskProgress | None) -> bool:
        """`on_update` for a change that needs no waiting: True if done; False when it must
        be stored first (the job starts running) or concerns task_error or an end."""
        if job.status.is_final:
            return True
        if status in TERMINAL_STATUSES or job.id in self._error_since:
            return False
        running = status not in WAITING_STATUSES
        if running and job.status is not JobState.RUNNING:
            return False
        self._note(job, status, progress if running else None)
        return True

    def _note(self, job: Job, status: TaskStatus, progress: TaskProgress | None) -> None:
        """In memory only: Wiro's finer status, and the progress of a running task."""
        job.wiro_status = status.value
        if progress is not None and progress != job.progress:
            job.progress = progress
            self._announce(job, progress)

    def _announce(self, job: Job, progress: TaskProgress) -> None:
        """A PROGRESS event when it is worth one: a model prints a line per step, thirty or
        more a task, and no one reads them all. The job itself always holds the latest."""
        now = time.monotonic()
        told = self._progress_told.get(job.id)
        if (
            told is not None
            and progress.fraction < 1.0
            and progress.fraction - told[1] < PROGRESS_STEP
            and now - told[0] < PROGRESS_EVERY
        ):
            return
        self._progress_told[job.id] = (now, progress.fraction)
        book = self._book
        book.events.publish(JobEvent(EventKind.PROGRESS, book.snapshot(job), progress))

    def _note_error(self, job: Job, task: Task) -> None:
        """A task_error that has not ended the task starts the grace period; leaving it
        ends the grace period."""
        timeout = self._timeouts.get(job.id)
        loop = asyncio.get_running_loop()
        errored = task.status is TaskStatus.ERROR and not task.is_terminal
        if errored and job.id not in self._error_since:
            now = loop.time()
            self._error_since[job.id] = now
            log.info("job %s: Wiro shows task_error; waiting to see if the task ends", job.id)
            if timeout is not None:
                when = timeout.when()
                grace_end = now + self.error_grace
                timeout.reschedule(grace_end if when is None else min(when, grace_end))
        elif not errored and job.id in self._error_since:
            del self._error_since[job.id]
            if timeout is not None:
                remaining = self.deadline(job) - time.time()
                timeout.reschedule(loop.time() + max(remaining, 0.0))

    async def complete(self, job: Job, task: Task) -> None:
        book = self._book
        if task.status is TaskStatus.ERROR:
            # Wiro says it ended in error: make sure nothing of it still runs (and bills).
            stopped = await self._stop_for_good(job)
            if stopped is not None and stopped.status is TaskStatus.CANCEL:
                task = task.model_copy(update={"totalcost": stopped.totalcost})
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
                    job,
                    max_bytes=self._settings.max_download_bytes,
                    writer=self._file_writer,
                )
            except (WiroError, OSError) as exc:
                if isinstance(exc, WiroError):
                    error = f"The images were made but could not be downloaded: {exc}"
                else:
                    # The bot's own disk (full, read-only, gone): the task still ran and is
                    # billed, so it is recorded with its cost; the folder stays out of the words.
                    log.error("job %s: could not save its images: %s", job.id, exc)
                    error = "The images were made but the bot could not save them " + (
                        f"({exc.strerror or type(exc).__name__})."
                    )
                await book.finish(
                    job, JobState.FAILED, task=task, kind=ErrorKind.DOWNLOAD, error=error
                )
                return
            await book.finish(job, JobState.SUCCEEDED, task=task, outputs=outputs)

    async def _stop_for_good(self, job: Job) -> Task | None:
        """Stop the job's task at Wiro, trying again for a while; the task once it has
        stopped, or None when Wiro would not say so."""
        for pause in (*self.stop_pauses, None):
            try:
                _, task = await self._canceller.stop(job)
                return task
            except WiroError as exc:
                if pause is None:
                    log.error(
                        "job %s: Wiro task %s could not be confirmed stopped: %s",
                        job.id,
                        job.task_id,
                        exc,
                    )
                    return None
                log.warning("job %s: stopping task %s: %s", job.id, job.task_id, exc)
                await asyncio.sleep(pause)
        return None  # pragma: no cover - the loop returns

    async def _give_up_on_error(self, job: Job, last: Task | None) -> None:
        """task_error persisted past the grace period without the task ending."""
        stopped = await self._stop_for_good(job)
        reason = (last.failure_reason if last is not None else "") or "no reason given"
        async with self._book.lock(job):
            if job.status.is_final:
                return
            if stopped is not None and stopped.status is TaskStatus.POSTPROCESS_END:
                pass  # it recovered and ended on its own: record that below
            else:
                unsure = (
                    ""
                    if stopped is not None
                    else " Wiro could not confirm that it stopped; it may still be billed."
                )
                await self._book.finish(
                    job,
                    JobState.FAILED,
                    task=stopped,
                    kind=ErrorKind.TASK_FAILED,
                    error=f"{reason}{unsure}",
                )
                return
        assert stopped is not None
        await self.complete(job, stopped)

    async def _expire(self, job: Job) -> None:
        stopped = await self._stop_for_good(job)
        if stopped is not None and stopped.status is not TaskStatus.CANCEL:
            await self.complete(job, stopped)  # it ended on its own just now
            return
        took = duration_words(self._settings.deadline_seconds)
        if stopped is not None:
            error = f"Wiro did not finish within {took}, so the job was stopped."
        else:
            error = (
                f"Wiro did not finish within {took}. The bot asked Wiro to stop it, but Wiro "
                "could not confirm that it stopped; it may still finish and be billed."
            )
        async with self._book.lock(job):
            await self._book.finish(
                job, JobState.TIMED_OUT, task=stopped, kind=ErrorKind.DEADLINE, error=error
            )
