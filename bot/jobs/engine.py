"""The job engine: persist, admit, submit, watch, cancel, finish and resume jobs.

`JobEngine` is the one object the Discord layer and the CLI use; each part of a job's life has
a module of its own:

- `admission`: a request checked against its model, the server and the daily limit;
- `dispatch`: the waiting line and our concurrency limits;
- `submission`: the Run and what Wiro answered;
- `following`: the task at Wiro until it ends, within the deadline;
- `cancelling`: Task/Cancel and Task/Kill;
- `book`: the jobs in hand, their slots, and the one place a job changes.

Every state change is written to the store before it is announced, and before any Wiro call it
leads to; so a new engine on the same database can pick up where an old one stopped, and no job
is submitted twice. The engine emits events and never formats a Discord message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bot.catalog.catalog import Catalog
from bot.jobs.admission import Admission, JobRefused, JobRequest, LimitReached, Prepared
from bot.jobs.book import JobBook
from bot.jobs.cancelling import Canceller, CancelOutcome, CancelResult
from bot.jobs.dispatch import Dispatcher
from bot.jobs.events import EventBus, Subscription
from bot.jobs.following import Follower
from bot.jobs.job import ErrorKind, Job, JobState
from bot.jobs.submission import Submitter
from bot.jobs.watch import DurationEstimates, PollingWatcher, PollSchedule, TaskWatcher
from bot.settings import JobSettings
from bot.store import NewJob, Store
from bot.wiro.client import WiroClient

__all__ = [
    "CancelOutcome",
    "CancelResult",
    "JobEngine",
    "JobRefused",
    "JobRequest",
    "LimitReached",
    "Prepared",
]

log = logging.getLogger(__name__)


class JobEngine:
    def __init__(
        self,
        *,
        client: WiroClient,
        store: Store,
        catalog: Catalog,
        settings: JobSettings,
        outputs_dir: Path,
        default_model: str,
        watcher: TaskWatcher | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.catalog = catalog
        self.settings = settings
        self.outputs_dir = outputs_dir
        outputs_dir.mkdir(parents=True, exist_ok=True)
        self.default_model = default_model
        self.events = EventBus()
        self.estimates = DurationEstimates()
        self._rng = rng or random.Random()
        self._watcher: TaskWatcher = watcher or PollingWatcher(
            client,
            self.estimates,
            PollSchedule(settings.poll_min_interval, settings.poll_max_interval),
            rng=self._rng,
        )
        self._closing = False
        self._file_writer = ThreadPoolExecutor(1, thread_name_prefix="wirobot-files")
        self._book = JobBook(store, self.events)
        self._admission = Admission(store, catalog, settings, default_model, self._rng)
        self._dispatcher = Dispatcher(self._book, settings, self._submit)
        self._canceller = Canceller(self._book, client, self._dispatcher.line)
        self._follower = Follower(
            self._book,
            client,
            self._watcher,
            self._canceller,
            settings,
            outputs_dir,
            self._file_writer,
        )
        self._submitter = Submitter(
            self._book,
            client,
            catalog,
            self._dispatcher,
            self._follower,
            self.cancel,
            lambda: self._closing,
        )
        self._dispatch_task: asyncio.Task[None] | None = None

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn model durations and resume every unfinished job of the database."""
        for model, seconds in (await self.store.jobs.typical_durations()).items():
            self.estimates.record(model, seconds)
        for job in await self.store.jobs.unfinished():
            await self._resume(job)
        self._dispatch_task = asyncio.create_task(self._dispatcher.run(), name="wirobot-dispatch")

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop taking jobs. Runs in flight get `grace` seconds to be answered and recorded;
        the rest stays in the database and resumes at the next start."""
        self._closing = True
        if self._dispatch_task is not None:
            self._dispatch_task.cancel()
        tasks, jobs = self._book.tasks, self._book.jobs
        submitting = [
            task
            for job_id, task in tasks.items()
            if jobs.get(job_id) and jobs[job_id].status is JobState.SUBMITTED
        ]
        if submitting:
            await asyncio.wait(submitting, timeout=grace)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(
            *tasks.values(),
            *([self._dispatch_task] if self._dispatch_task else []),
            return_exceptions=True,
        )
        tasks.clear()
        self._file_writer.shutdown(wait=True)

    # -- asking --------------------------------------------------------------------------------

    def subscribe(self, job_ids: list[int] | None = None) -> Subscription:
        return self.events.subscribe(job_ids)

    async def get(self, job_id: int) -> Job | None:
        job = self._book.jobs.get(job_id)
        if job is not None:
            return self._book.snapshot(job)
        return await self.store.jobs.get(job_id)

    def queue_position(self, job_id: int) -> int | None:
        """1-based place among jobs waiting for a slot; None when not waiting."""
        return self._dispatcher.position(job_id)

    # -- submitting ----------------------------------------------------------------------------

    async def prepare(self, request: JobRequest) -> Prepared:
        """Check a request without storing anything. Raises InvalidInput or LimitReached
        with a message for the person. `submit` takes the result: nothing is checked twice."""
        return await self._admission.prepare(request)

    async def submit(self, request: JobRequest | Prepared) -> Job:
        """Validate (unless already prepared), store and queue a job. Raises InvalidInput or
        JobRefused."""
        if self._closing:
            raise JobRefused("The bot is shutting down; try again in a minute.")
        prepared = request if isinstance(request, Prepared) else await self.prepare(request)
        slug, inputs, guild = prepared.model, prepared.inputs, prepared.guild
        if guild is not None:
            self._dispatcher.learn_user_cap(guild)
        job = await self.store.jobs.create(
            NewJob(
                model=slug,
                prompt=str(inputs["prompt"]),
                inputs=inputs,
                seed=int(inputs["seed"]),
                requester=prepared.request.requester,
                created_at=time.time(),
            )
        )
        self._book.adopt(job)
        self._book.publish(job)
        await self._dispatcher.enqueue(job)
        return self._book.snapshot(job)

    async def _submit(self, job: Job) -> None:
        await self._submitter.submit(job)

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, job_id: int) -> CancelResult:
        return await self._canceller.cancel(job_id)

    # -- resuming ------------------------------------------------------------------------------

    async def _resume(self, job: Job) -> None:
        book = self._book
        book.adopt(job)
        if job.guild_id is not None:
            self._dispatcher.learn_user_cap(await self.store.guilds.get(job.guild_id))
        if job.status in (JobState.CREATED, JobState.WAITING):
            if job.cancel_requested:
                await book.finish(job, JobState.CANCELLED, slot_held=False)
            else:
                log.info("resuming job %s: waiting for a slot", job.id)
                await self._dispatcher.enqueue(job)
            return
        if job.task_id is None:
            # Run was sent but its answer never stored: it may have created a billed task, so
            # it is not sent again.
            book.hold_slot(job)
            await book.finish(
                job,
                JobState.FAILED,
                kind=ErrorKind.LOST,
                error="The bot stopped while sending this job to Wiro; it was not sent again "
                "so that it is not paid for twice.",
            )
            return
        log.info("resuming job %s: following Wiro task %s", job.id, job.task_id)
        book.hold_slot(job)
        if job.cancel_requested:
            book.spawn(job, self._cancel_resumed(job))
        else:
            book.spawn(job, self._follower.follow(job))

    async def _cancel_resumed(self, job: Job) -> None:
        result = await self.cancel(job.id)
        if result.outcome is CancelOutcome.FAILED:
            await self._follower.follow(job)
