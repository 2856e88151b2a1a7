"""The engine's memory of the jobs it handles: one place that changes a job.

Every change is written to the store before it is applied in memory and announced, so a new
engine on the same database can pick up where an old one stopped. The book also counts the
slots jobs hold at Wiro (over all, per server, per member) for the dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from bot.jobs.events import EventBus, EventKind, JobEvent
from bot.jobs.job import ErrorKind, Job, JobState, Output
from bot.store import Claim, RunLimits, Store
from bot.wiro.types import Task

log = logging.getLogger(__name__)

#: The states in which a job holds one of our slots at Wiro.
ACTIVE = frozenset({JobState.SUBMITTED, JobState.QUEUED, JobState.RUNNING})

Owner = tuple[int | None, int | None]


class JobBook:
    def __init__(self, store: Store, events: EventBus, owner: str, lease_seconds: float) -> None:
        self.store = store
        self.events = events
        #: This process's name in the store's claims, and how long a claim holds unrenewed.
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.jobs: dict[int, Job] = {}  # jobs this engine is handling, by id
        self._locks: dict[int, asyncio.Lock] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}  # submit or follow task per job
        self.active = 0  # jobs holding a slot: Runs in flight and tasks at Wiro
        self.at_wiro = 0  # of which Wiro has the task (its id is known)
        self.active_by_guild: Counter[int | None] = Counter()
        self.active_by_owner: Counter[Owner] = Counter()
        #: Set whenever a slot frees or a job joins the line: the dispatcher looks again.
        self.wakeup = asyncio.Event()
        #: Called after a job is finished and forgotten (e.g. to drop its claim).
        self.on_forget: Callable[[Job], Awaitable[None]] | None = None

    # -- memory ----------------------------------------------------------------------------

    def adopt(self, job: Job) -> None:
        self.jobs[job.id] = job
        self._locks[job.id] = asyncio.Lock()

    def lock(self, job: Job) -> asyncio.Lock:
        return self._locks.setdefault(job.id, asyncio.Lock())

    def forget(self, job: Job) -> None:
        self.jobs.pop(job.id, None)
        self._locks.pop(job.id, None)

    def snapshot(self, job: Job) -> Job:
        return job.copy()

    def publish(self, job: Job, kind: EventKind = EventKind.STATUS) -> None:
        self.events.publish(JobEvent(kind, self.snapshot(job)))

    # -- claims ----------------------------------------------------------------------------

    async def claim(self, job: Job) -> bool:
        """Take a job for this process in the store (False: another process holds it)."""
        now = time.time()
        return await self.store.jobs.claim(
            job.id, self.owner, now=now, until=now + self.lease_seconds
        )

    async def claim_run(self, job: Job, limits: RunLimits | None = None) -> Claim:
        """Mark a waiting job submitted if this process still holds it: the step before its
        Run. With `limits` (processes share the database), only while every process's jobs
        at Wiro stay under them. When it is no longer ours to Run (another process has it,
        or it was cancelled from elsewhere), it is let go here."""
        now = time.time()
        jobs = self.store.jobs
        if limits is None:
            ran = await jobs.claim_run(
                job.id, self.owner, submitted_at=now, until=now + self.lease_seconds
            )
            claim = Claim.RUN if ran else Claim.GONE
        else:
            claim = await jobs.claim_run_within(
                job.id,
                self.owner,
                submitted_at=now,
                until=now + self.lease_seconds,
                limits=limits,
                guild_id=job.guild_id,
                user_id=job.user_id,
            )
        if claim is Claim.RUN:
            job.status, job.submitted_at = JobState.SUBMITTED, now
            self.publish(job)
        elif claim is Claim.GONE:
            self.free_slot(job)
            stored = await jobs.get(job.id)
            if (
                stored is not None
                and stored.status.is_final
                and await jobs.holder(job.id) == self.owner
            ):
                # Ours, cancelled in line from another process: we announce it.
                self.finished_elsewhere(job, stored)
            else:
                log.info("job %s is handled by another process; letting it go", job.id)
                self.forget(job)
        return claim

    def finished_elsewhere(self, job: Job, stored: Job) -> None:
        """Another process finished (cancelled) a job this one had in hand: take its record
        as stored, announce it, and forget the job."""
        for name in (
            "status",
            "finished_at",
            "elapsed_seconds",
            "error",
            "error_kind",
            "cancel_requested",
            "wiro_status",
            "cost",
        ):
            setattr(job, name, getattr(stored, name))
        job.waiting_for = None
        log.info("job %s %s by another process", job.id, job.status.value)
        self.publish(job, EventKind.FINISHED)
        self.forget(job)

    # -- slots -----------------------------------------------------------------------------

    def hold_slot(self, job: Job) -> None:
        if job.task_id is not None:
            self.at_wiro += 1
        self.active += 1
        self.active_by_guild[job.guild_id] += 1
        self.active_by_owner[(job.guild_id, job.user_id)] += 1

    def free_slot(self, job: Job) -> None:
        if job.task_id is not None:
            self.at_wiro -= 1
        self.active -= 1
        self.active_by_guild[job.guild_id] -= 1
        owner = (job.guild_id, job.user_id)
        self.active_by_owner[owner] -= 1
        if not self.active_by_owner[owner]:
            # Only owners with jobs at Wiro stay: the waiting line looks at each of them.
            del self.active_by_owner[owner]
        self.wakeup.set()

    # -- background work -------------------------------------------------------------------

    def spawn(self, job: Job, work: Awaitable[None]) -> None:
        """Run a job's submission or following in the background; an unexpected error
        fails the job in plain words instead of vanishing."""

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("job %s: unexpected error", job.id)
                await self.finish(
                    job,
                    JobState.FAILED,
                    kind=ErrorKind.UNAVAILABLE,
                    error=f"Something went wrong inside the bot ({type(exc).__name__}).",
                )
            finally:
                if self.tasks.get(job.id) is asyncio.current_task():
                    del self.tasks[job.id]

        self.tasks[job.id] = asyncio.create_task(run(), name=f"wirobot-job-{job.id}")

    # -- changes ---------------------------------------------------------------------------

    async def set(self, job: Job, **changes: Any) -> None:
        """Store, then apply and announce, a change to a job."""
        changes = {k: v for k, v in changes.items() if getattr(job, k) != v}
        if not changes:
            return
        await self.store.jobs.update(job.id, **changes)
        if changes.get("task_id") is not None and job.task_id is None and job.status in ACTIVE:
            self.at_wiro += 1
        for name, value in changes.items():
            setattr(job, name, value)
        if "status" in changes:
            self.publish(job)

    async def finish(
        self,
        job: Job,
        state: JobState,
        *,
        task: Task | None = None,
        outputs: list[Output] | None = None,
        error: str | None = None,
        kind: ErrorKind | None = None,
        slot_held: bool | None = None,
        cost: Decimal | None = None,
    ) -> None:
        if job.status.is_final:
            return
        held = job.status in ACTIVE if slot_held is None else slot_held
        now = time.time()
        changes: dict[str, Any] = {
            "status": state,
            "finished_at": now,
            "elapsed_seconds": now - job.created_at,
            "error": error,
            "error_kind": kind,
        }
        if task is not None:
            changes["cost"] = task.totalcost
        if cost is not None:
            changes["cost"] = cost
        # Kept only while the task runs: the socket's token (a secret) and Wiro's finer status.
        changes["task_token"] = None
        changes["wiro_status"] = None
        await self.store.jobs.finish(job.id, outputs or [], **changes)
        for name, value in changes.items():
            setattr(job, name, value)
        job.waiting_for = None
        if outputs:
            job.outputs = list(outputs)
        if held:
            self.free_slot(job)
        if state is JobState.FAILED:
            log.warning("job %s failed (%s): %s", job.id, kind, error)
        else:
            log.info("job %s %s", job.id, state.value)
        self.publish(job, EventKind.FINISHED)
        # The record lives on in the store; the engine forgets finished jobs.
        self.forget(job)
        if self.on_forget is not None:
            await self.on_forget(job)
