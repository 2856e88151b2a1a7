"""The job engine: persist, admit, submit, watch, cancel, finish and resume jobs.

Every state change is written to the store before it is announced, and before any Wiro call it
leads to; so a new engine on the same database can pick up where an old one stopped, and no job
is submitted twice. The engine emits events and never formats a Discord message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bot.catalog.catalog import Catalog
from bot.catalog.validation import InputCaps, InvalidInput, resolve_inputs, to_wire
from bot.jobs.events import EventBus, EventKind, JobEvent, Subscription
from bot.jobs.job import ErrorKind, Job, JobState, Output, Requester
from bot.jobs.outputs import save_outputs
from bot.jobs.waiting_line import WaitingLine
from bot.jobs.watch import DurationEstimates, PollingWatcher, PollSchedule, TaskWatcher
from bot.settings import JobSettings
from bot.store import GuildSettings, NewJob, Store
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import (
    AuthError,
    ConcurrencyLimit,
    DownloadError,
    InsufficientBalance,
    RateLimited,
    ValidationFailed,
    WiroConnectionError,
    WiroError,
)
from bot.wiro.types import WAITING_STATUSES, Task, TaskStatus

log = logging.getLogger(__name__)

DAY = 86_400.0
#: The states in which a job holds one of our slots at Wiro.
_ACTIVE = frozenset({JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING})


class JobRefused(Exception):
    """The job was not accepted; `str()` is a sentence for the person who asked."""


class LimitReached(JobRefused):
    def __init__(self, message: str, *, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at


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


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What someone asked for. `options` are snake_case names; None values mean not given."""

    prompt: str
    requester: Requester
    model: str | None = None
    options: dict[str, object] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request checked against its model, the server's settings and limits."""

    request: JobRequest
    model: str  # the slug it runs with
    inputs: dict[str, Any]  # every input resolved, seed included
    guild: GuildSettings | None


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
        self._jobs: dict[int, Job] = {}  # jobs this engine is handling, by id
        self._locks: dict[int, asyncio.Lock] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}  # submit or follow task per job
        self._active_by_guild: Counter[int | None] = Counter()
        self._active_by_owner: Counter[tuple[int | None, int | None]] = Counter()
        self._active = 0
        self._line = WaitingLine(lambda owner: self._active_by_owner[owner])  # type: ignore[index]
        self._user_caps: dict[int, int] = {}  # guild -> its per-member concurrency setting
        self._wakeup = asyncio.Event()
        self._wiro_full_until = 0.0  # after code 96: no Run before this, or a slot frees
        self._wiro_backoff = 1.0
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        self._file_writer = ThreadPoolExecutor(1, thread_name_prefix="wirobot-files")

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn model durations and resume every unfinished job of the database."""
        for model, seconds in (await self.store.jobs.typical_durations()).items():
            self.estimates.record(model, seconds)
        for job in await self.store.jobs.unfinished():
            await self._resume(job)
        self._dispatcher = asyncio.create_task(self._dispatch_loop(), name="wirobot-dispatch")

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop taking jobs. Runs in flight get `grace` seconds to be answered and recorded;
        the rest stays in the database and resumes at the next start."""
        self._closing = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        submitting = [
            task
            for job_id, task in self._tasks.items()
            if self._jobs.get(job_id) and self._jobs[job_id].status is JobState.SUBMITTED
        ]
        if submitting:
            await asyncio.wait(submitting, timeout=grace)
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(
            *self._tasks.values(),
            *([self._dispatcher] if self._dispatcher else []),
            return_exceptions=True,
        )
        self._tasks.clear()
        self._file_writer.shutdown(wait=True)

    # -- asking --------------------------------------------------------------------------------

    def subscribe(self, job_ids: list[int] | None = None) -> Subscription:
        return self.events.subscribe(job_ids)

    async def get(self, job_id: int) -> Job | None:
        job = self._jobs.get(job_id)
        if job is not None:
            return dataclasses.replace(job, outputs=list(job.outputs))
        return await self.store.jobs.get(job_id)

    def peek(self, job_id: int) -> Job | None:
        """The live job, not a copy: read only. None when this engine no longer holds it."""
        return self._jobs.get(job_id)

    def queue_position(self, job_id: int) -> int | None:
        """1-based place among jobs waiting for a slot; None when not waiting."""
        return self._line.position(job_id)

    def queue_positions(self) -> dict[int, int]:
        """Every waiting job's place, in one pass (kept until the line or the loads change)."""
        return self._line.positions()

    # -- submitting ----------------------------------------------------------------------------

    async def prepare(self, request: JobRequest) -> Prepared:
        """Check a request without storing anything. Raises InvalidInput or LimitReached
        with a message for the person. `submit` takes the result: nothing is checked twice."""
        guild_id = request.requester.guild_id
        guild = await self.store.guilds.get(guild_id) if guild_id is not None else None
        slug = request.model or (guild.default_model if guild else None) or self.default_model
        model = self.catalog.require(slug)
        if guild is not None and not guild.allows(model.slug):
            allowed = [m.slug for m in self.catalog.all() if guild.allows(m.slug)]
            raise InvalidInput(
                "model",
                f"{model.slug} is turned off on this server. Allowed: {', '.join(allowed)}.",
                ", ".join(allowed),
            )
        defaults = (
            await self.store.guilds.model_defaults(guild.guild_id, model.slug) if guild else {}
        )
        caps = InputCaps(guild.max_samples, guild.max_steps) if guild else None
        given = {"prompt": request.prompt, **request.options}
        inputs = resolve_inputs(model, given, defaults=defaults, caps=caps, rng=self._rng)
        await self._check_daily_limit(request.requester, guild)
        return Prepared(request, model.slug, inputs, guild)

    async def submit(self, request: JobRequest | Prepared) -> Job:
        """Validate (unless already prepared), store and queue a job. Raises InvalidInput or
        JobRefused."""
        if self._closing:
            raise JobRefused("The bot is shutting down; try again in a minute.")
        prepared = request if isinstance(request, Prepared) else await self.prepare(request)
        slug, inputs, guild = prepared.model, prepared.inputs, prepared.guild
        if guild is not None:
            self._learn_user_cap(guild)
        job = await self.store.jobs.create(
            NewJob(
                model=slug,
                prompt=str(inputs["prompt"]),
                inputs=inputs,
                seed=int(inputs["seed"]),
                requester=prepared.request.requester,
                created_at=time.time(),
                status=JobState.WAITING,  # stored straight into the line: one write, not two
            )
        )
        self._adopt(job)
        self._publish(job)
        await self._enqueue(job)
        return self._snapshot(job)

    def _learn_user_cap(self, guild: GuildSettings) -> None:
        """Remember a server's jobs-at-once per member (None: the bot's setting applies)."""
        if guild.max_concurrent_per_user is None:
            self._user_caps.pop(guild.guild_id, None)
        else:
            self._user_caps[guild.guild_id] = guild.max_concurrent_per_user

    async def _check_daily_limit(self, requester: Requester, guild: GuildSettings | None) -> None:
        limit = self.settings.max_jobs_per_user_per_day or None
        if guild is not None and guild.max_jobs_per_user_per_day is not None:
            limit = guild.max_jobs_per_user_per_day
        if not limit or requester.user_id is None:
            return
        since = time.time() - DAY
        used = await self.store.jobs.count_started_since(
            user_id=requester.user_id, guild_id=requester.guild_id, since=since
        )
        if used >= limit:
            oldest = await self.store.jobs.oldest_started_since(
                user_id=requester.user_id, guild_id=requester.guild_id, since=since
            )
            retry_at = (oldest or time.time()) + DAY
            raise LimitReached(
                f"You have used your {limit} images per day on this server.",
                retry_at=retry_at,
            )

    async def _enqueue(self, job: Job, *, front: bool = False) -> None:
        if job.status is not JobState.WAITING:
            await self._set(job, status=JobState.WAITING)
        self._line.push(job, front=front)
        self._wakeup.set()

    # -- dispatching ---------------------------------------------------------------------------

    def _may_start(self, job: Job) -> bool:
        if self._active >= self.settings.max_concurrent:
            return False
        if self._active_by_guild[job.guild_id] >= self.settings.max_concurrent_per_guild:
            return False
        per_user = self.settings.max_concurrent_per_user
        if job.guild_id is not None and job.guild_id in self._user_caps:
            per_user = self._user_caps[job.guild_id]
        return self._active_by_owner[(job.guild_id, job.user_id)] < per_user

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while True:
                wait = self._wiro_full_until - time.monotonic()
                if wait > 0:
                    # Wiro said it is full: wait for a slot to free or the back-off to pass.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wakeup.wait()
                    self._wakeup.clear()
                    self._wiro_full_until = 0.0
                    continue
                if self._active >= self.settings.max_concurrent:
                    break  # no slot for anyone: no need to walk the line
                job = self._line.pop_next(self._may_start)
                if job is None:
                    break
                self._hold_slot(job)
                self._spawn(job, self._submit(job))

    def _hold_slot(self, job: Job) -> None:
        self._active += 1
        self._active_by_guild[job.guild_id] += 1
        self._active_by_owner[(job.guild_id, job.user_id)] += 1

    def _free_slot(self, job: Job) -> None:
        self._active -= 1
        self._active_by_guild[job.guild_id] -= 1
        self._active_by_owner[(job.guild_id, job.user_id)] -= 1
        self._wakeup.set()

    async def _submit(self, job: Job) -> None:
        model = self.catalog.get(job.model)
        if model is None:
            await self._finish(
                job,
                JobState.FAILED,
                error=f"The model {job.model} is no longer available.",
                kind=ErrorKind.REJECTED,
            )
            return
        payload = to_wire(model, job.inputs)
        async with self._lock(job):
            if job.status is not JobState.WAITING:
                return  # cancelled while it was being picked
            await self._set(job, status=JobState.SUBMITTED, submitted_at=time.time())
        try:
            result = await self.client.run(job.model, payload)
        except ConcurrencyLimit:
            # Not a failure: wait for one of our tasks to end, then try again, first in line.
            log.info("job %s: Wiro's concurrency limit reached; waiting for a free slot", job.id)
            await self._requeue(job, self._wiro_backoff)
            self._wiro_backoff = min(self._wiro_backoff * 2, 30.0)
            return
        except RateLimited as exc:
            await self._requeue(job, exc.retry_after or self._wiro_backoff)
            return
        except WiroError as exc:
            await self._finish(job, JobState.FAILED, error=str(exc), kind=_error_kind(exc))
            return
        self._wiro_backoff = 1.0
        async with self._lock(job):
            await self._set(
                job,
                status=JobState.QUEUED,
                task_id=result.taskid,
                task_token=result.socketaccesstoken,
                wiro_status=TaskStatus.QUEUE.value,
            )
            cancel_now = job.cancel_requested
        if cancel_now:
            await self.cancel(job.id)
        elif not self._closing:
            await self._follow(job)

    async def _requeue(self, job: Job, pause: float) -> None:
        """Wiro did not take the Run: put the job back first in line, pause submissions."""
        self._free_slot(job)
        self._wiro_full_until = time.monotonic() + pause
        async with self._lock(job):
            await self._set(job, submitted_at=None)
            if job.cancel_requested:
                await self._finish(job, JobState.CANCELLED, slot_held=False)
            else:
                await self._enqueue(job, front=True)

    # -- watching ------------------------------------------------------------------------------

    def _deadline(self, job: Job) -> float:
        return (job.submitted_at or time.time()) + self.settings.deadline_seconds

    async def _follow(self, job: Job) -> None:
        remaining = self._deadline(job) - time.time()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                task = await self._watcher.watch(job, lambda task: self._on_update(job, task))
        except TimeoutError:
            # One last look first: it may have ended meanwhile, or while the bot was down.
            last = await self._last_look(job)
            if last is not None and last.is_terminal:
                await self._complete(job, last)
            else:
                await self._expire(job)
            return
        except WiroError as exc:
            log.warning("job %s: lost track of Wiro task %s: %s", job.id, job.task_id, exc)
            await self._finish(job, JobState.FAILED, error=str(exc), kind=_error_kind(exc))
            return
        await self._complete(job, task)

    async def _last_look(self, job: Job) -> Task | None:
        assert job.task_id is not None
        try:
            task = await self.client.task_detail(task_id=job.task_id)
        except WiroError as exc:
            log.info("job %s: last look at Wiro task %s failed: %s", job.id, job.task_id, exc)
            return None
        await self._on_update(job, task)
        return task

    async def _on_update(self, job: Job, task: Task) -> None:
        if job.status.is_final:
            return
        # Wiro's finer statuses are kept in memory (they pick Cancel or Kill); the store and
        # the subscribers hear only of changes of the job's own state.
        running = task.status not in WAITING_STATUSES and not task.is_terminal
        if running and job.status is not JobState.RUNNING:
            await self._set(
                job, status=JobState.RUNNING, wiro_status=task.status.value, started_at=time.time()
            )
        job.wiro_status = task.status.value
        if running and task.progress is not None and task.progress != job.progress:
            job.progress = task.progress
            self.events.publish(JobEvent(EventKind.PROGRESS, self._snapshot(job), job.progress))

    async def _complete(self, job: Job, task: Task) -> None:
        async with self._lock(job):
            if job.status.is_final:
                return
            if task.status is TaskStatus.CANCEL:
                await self._finish(
                    job,
                    JobState.CANCELLED,
                    task=task,
                    kind=ErrorKind.CANCELLED_AT_WIRO,
                    error="The task was cancelled at Wiro.",
                )
                return
            if task.failed:
                await self._finish(
                    job,
                    JobState.FAILED,
                    task=task,
                    kind=ErrorKind.TASK_FAILED,
                    error=task.failure_reason or "The model failed without giving a reason.",
                )
                return
            try:
                outputs = await save_outputs(
                    self.client,
                    task,
                    self.outputs_dir,
                    str(job.id),
                    max_bytes=self.settings.max_download_bytes,
                    writer=self._file_writer,
                )
            except WiroError as exc:
                await self._finish(
                    job,
                    JobState.FAILED,
                    task=task,
                    kind=ErrorKind.DOWNLOAD,
                    error=f"The images were made but could not be downloaded: {exc}",
                )
                return
            await self._finish(job, JobState.SUCCEEDED, task=task, outputs=outputs)

    async def _expire(self, job: Job) -> None:
        async with self._lock(job):
            if job.status.is_final:
                return
            try:
                await self._stop_at_wiro(job)
            except WiroError as exc:
                log.warning("job %s: could not stop Wiro task %s: %s", job.id, job.task_id, exc)
            minutes = self.settings.deadline_seconds / 60
            await self._finish(
                job,
                JobState.TIMED_OUT,
                kind=ErrorKind.DEADLINE,
                error=f"Wiro did not finish within {minutes:g} minutes, so the job was stopped.",
            )

    async def _stop_at_wiro(self, job: Job) -> CancelOutcome:
        """Task/Cancel while queued, Task/Kill once a worker has it."""
        assert job.task_id is not None
        waiting = job.wiro_status is None or TaskStatus(job.wiro_status) in WAITING_STATUSES
        if waiting:
            try:
                await self.client.cancel_task(job.task_id)
                return CancelOutcome.CANCELLED
            except WiroError as exc:
                # It may have started meanwhile: Kill is the answer for a running task.
                log.info("job %s: Task/Cancel refused (%s); trying Task/Kill", job.id, exc)
        await self.client.kill_task(job.task_id)
        return CancelOutcome.KILLED

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, job_id: int) -> CancelResult:
        job = self._jobs.get(job_id)
        if job is None:
            stored = await self.store.jobs.get(job_id)
            if stored is None:
                return CancelResult(CancelOutcome.NOT_FOUND, None)
            return CancelResult(CancelOutcome.ALREADY_FINISHED, stored)
        async with self._lock(job):
            if job.status.is_final:
                return CancelResult(CancelOutcome.ALREADY_FINISHED, self._snapshot(job))
            if job.status.is_local:
                self._line.remove(job.id)
                await self._finish(job, JobState.CANCELLED, slot_held=False)
                return CancelResult(CancelOutcome.DROPPED, self._snapshot(job))
            if job.task_id is None:
                await self._set(job, cancel_requested=True)
                return CancelResult(CancelOutcome.PENDING, self._snapshot(job))
            await self._set(job, cancel_requested=True)
            try:
                outcome = await self._stop_at_wiro(job)
            except WiroError as exc:
                log.warning("job %s: cancel failed: %s", job.id, exc)
                return CancelResult(CancelOutcome.FAILED, self._snapshot(job), str(exc))
            follower = self._tasks.get(job.id)
            if follower is not None and follower is not asyncio.current_task():
                follower.cancel()
            await self._finish(job, JobState.CANCELLED, wiro_status=TaskStatus.CANCEL.value)
            return CancelResult(outcome, self._snapshot(job))

    # -- resuming ------------------------------------------------------------------------------

    async def _resume(self, job: Job) -> None:
        self._adopt(job)
        if job.guild_id is not None:
            self._learn_user_cap(await self.store.guilds.get(job.guild_id))
        if job.status in (JobState.CREATED, JobState.WAITING):
            if job.cancel_requested:
                await self._finish(job, JobState.CANCELLED, slot_held=False)
            else:
                log.info("resuming job %s: waiting for a slot", job.id)
                await self._enqueue(job)
            return
        if job.task_id is None:
            # Run was sent but its answer never stored: it may have created a billed task, so
            # it is not sent again.
            self._hold_slot(job)
            await self._finish(
                job,
                JobState.FAILED,
                kind=ErrorKind.LOST,
                error="The bot stopped while sending this job to Wiro; it was not sent again "
                "so that it is not paid for twice.",
            )
            return
        log.info("resuming job %s: following Wiro task %s", job.id, job.task_id)
        self._hold_slot(job)
        if job.cancel_requested:
            self._spawn(job, self._cancel_resumed(job))
        else:
            self._spawn(job, self._follow(job))

    async def _cancel_resumed(self, job: Job) -> None:
        result = await self.cancel(job.id)
        if result.outcome is CancelOutcome.FAILED:
            await self._follow(job)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _adopt(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._locks[job.id] = asyncio.Lock()

    def _lock(self, job: Job) -> asyncio.Lock:
        return self._locks.setdefault(job.id, asyncio.Lock())

    def _spawn(self, job: Job, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("job %s: unexpected error", job.id)
                await self._finish(
                    job,
                    JobState.FAILED,
                    kind=ErrorKind.UNAVAILABLE,
                    error=f"Something went wrong inside the bot ({type(exc).__name__}).",
                )
            finally:
                if self._tasks.get(job.id) is asyncio.current_task():
                    del self._tasks[job.id]

        self._tasks[job.id] = asyncio.create_task(run(), name=f"wirobot-job-{job.id}")

    def _snapshot(self, job: Job) -> Job:
        return dataclasses.replace(job, outputs=list(job.outputs))

    def _publish(self, job: Job, kind: EventKind = EventKind.STATUS) -> None:
        self.events.publish(JobEvent(kind, self._snapshot(job)))

    async def _set(self, job: Job, **changes: Any) -> None:
        """Store, then apply and announce, a change to a job."""
        changes = {k: v for k, v in changes.items() if getattr(job, k) != v}
        if not changes:
            return
        await self.store.jobs.update(job.id, **changes)
        for name, value in changes.items():
            setattr(job, name, value)
        if "status" in changes:
            self._publish(job)

    async def _finish(
        self,
        job: Job,
        state: JobState,
        *,
        task: Task | None = None,
        outputs: list[Output] | None = None,
        error: str | None = None,
        kind: ErrorKind | None = None,
        slot_held: bool | None = None,
        wiro_status: str | None = None,
    ) -> None:
        if job.status.is_final:
            return
        held = job.status in _ACTIVE if slot_held is None else slot_held
        now = time.time()
        changes: dict[str, Any] = {
            "status": state,
            "finished_at": now,
            "elapsed_seconds": now - job.created_at,
            "error": error,
            "error_kind": kind,
        }
        if task is not None:
            changes["wiro_status"] = task.status.value
            changes["cost"] = task.totalcost
        elif wiro_status is not None:
            changes["wiro_status"] = wiro_status
        await self.store.jobs.finish(job.id, outputs or [], **changes)
        for name, value in changes.items():
            setattr(job, name, value)
        if outputs:
            job.outputs = list(outputs)
        if held:
            self._free_slot(job)
        if state is JobState.FAILED:
            log.warning("job %s failed (%s): %s", job.id, kind, error)
        else:
            log.info("job %s %s", job.id, state.value)
        self._publish(job, EventKind.FINISHED)
        # The record lives on in the store; the engine forgets finished jobs.
        self._jobs.pop(job.id, None)
        self._locks.pop(job.id, None)


def _error_kind(exc: WiroError) -> ErrorKind:
    if isinstance(exc, InsufficientBalance):
        return ErrorKind.INSUFFICIENT_BALANCE
    if isinstance(exc, AuthError):
        return ErrorKind.AUTH
    if isinstance(exc, ValidationFailed):
        return ErrorKind.REJECTED
    if isinstance(exc, DownloadError):
        return ErrorKind.DOWNLOAD
    if isinstance(exc, WiroConnectionError) and exc.reached:
        return ErrorKind.LOST
    return ErrorKind.UNAVAILABLE
