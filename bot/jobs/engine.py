"""The job engine: persist, admit, submit, watch, cancel, finish and resume jobs.

`JobEngine` is the one object the Discord layer and the CLI use; each part of a job's life has
a module of its own:

- `admission`: a request checked against its model, the server and the daily limit;
- `dispatch`: the waiting line and our concurrency limits;
- `gate`: when the next Run may go, at Wiro's limits (codes 96 and 97, HTTP 429);
- `submission`: the claim, the Run and what Wiro answered;
- `lost_runs`: the task of a Run whose answer was lost;
- `following`: the task at Wiro until it ends, within the deadline;
- `cancelling`: Task/Cancel and Task/Kill;
- `book`: the jobs in hand, their slots, and the one place a job changes.

Every state change is written to the store before it is announced, and before any Wiro call it
leads to; so a new engine on the same database can pick up where an old one stopped. Each job
is claimed by one process (a lease in the store, renewed while it lives), so processes sharing
a database never run a job twice, and a dead process's jobs are taken over. Processes sharing
PostgreSQL count the jobs-at-once limits in the database, and hear each other (a slot freed, a
cancel asked, jobs released) through its notices, with a periodic look as the safety net; a
Cancel works from any of them. The engine emits events and never formats a Discord message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from socket import gethostname

from bot.catalog.catalog import Catalog
from bot.catalog.pricing import PriceBook
from bot.jobs.admission import (
    Admission,
    BudgetExceeded,
    JobRefused,
    JobRequest,
    LimitReached,
    Prepared,
)
from bot.jobs.book import JobBook
from bot.jobs.budget import Budgets
from bot.jobs.cancelling import Canceller, CancelOutcome, CancelResult
from bot.jobs.dispatch import Dispatcher
from bot.jobs.events import EventBus, EventKind, Subscription
from bot.jobs.file_writer import FileWriter, ThreadFileWriter
from bot.jobs.follow import PollingOnly, SocketWatcher
from bot.jobs.following import Follower
from bot.jobs.gate import WiroGate
from bot.jobs.job import Job, JobState
from bot.jobs.lost_runs import LostRuns
from bot.jobs.submission import Submitter
from bot.jobs.watch import (
    DetailRateLimit,
    DurationEstimates,
    PollingWatcher,
    PollSchedule,
    TaskWatcher,
)
from bot.settings import JobSettings
from bot.store import NewJob, Store
from bot.wiro.client import WiroClient
from bot.wiro.socket import WiroSocket

__all__ = [
    "BudgetExceeded",
    "CancelOutcome",
    "CancelResult",
    "JobEngine",
    "JobRefused",
    "JobRequest",
    "LimitReached",
    "Prepared",
]

log = logging.getLogger(__name__)

#: Nonce stripes for processes sharing one Wiro key (and one database): one per live process.
#: More stripes, more processes; fewer, more requests a second before nonces run ahead of
#: the clock (1000 / stripes a second).
NONCE_STRIPES = 16


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
        socket: WiroSocket | None = None,
        rng: random.Random | None = None,
        on_follow: Callable[[str], None] | None = None,
        file_writer: FileWriter | None = None,
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
        self.prices = PriceBook(
            catalog, store.spend, client, past=store.spend, durations=self.estimates.get
        )
        self.budgets = Budgets(store)
        self._rng = rng or random.Random()
        polling = PollingWatcher(
            client,
            self.estimates,
            PollSchedule(
                settings.poll_min_interval,
                settings.poll_max_interval,
                discovery_rate=settings.detail_calls_per_second,
            ),
            rate_limit=DetailRateLimit(settings.detail_calls_per_second),
            rng=self._rng,
        )
        # The socket first when there is one; polling is its fallback.
        # `on_follow` hears "socket" or "polling" as each job is followed (for the metrics).
        fallback: TaskWatcher = polling if on_follow is None else PollingOnly(polling, on_follow)
        self._watcher: TaskWatcher = watcher or (
            SocketWatcher(socket, polling, on_follow=on_follow) if socket is not None else fallback
        )
        self._closing = False
        # How finished jobs' images reach the disk (the bot's: a helper process); closed here.
        self._file_writer: FileWriter = file_writer or ThreadFileWriter()
        #: This process's name in the store's job claims.
        self.owner = f"{gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._book = JobBook(store, self.events, self.owner, settings.claim_lease_seconds)
        self._admission = Admission(
            store, catalog, settings, default_model, self._rng, self.prices, self.budgets
        )
        self._dispatcher = Dispatcher(self._book, settings, self._submit)
        # Several processes may share the database: the limits are counted there.
        self._dispatcher.shared = store.jobs.shared
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
        self.lost_runs = LostRuns(client, store)
        self._submitter = Submitter(
            self._book,
            client,
            catalog,
            self._dispatcher,
            self._follower,
            self.lost_runs,
            self.cancel,
            lambda: self._closing,
        )
        self._dispatch_task: asyncio.Task[None] | None = None
        self._claims_task: asyncio.Task[None] | None = None
        self._notices = store.notices()
        self._asked: set[asyncio.Task[None]] = set()  # cancels asked by other processes
        self._taking_over: asyncio.Task[None] | None = None  # jobs another process released

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn model durations and resume every unfinished job of the database."""
        await self.prices.load()
        for model, seconds in (await self.store.jobs.typical_durations()).items():
            self.estimates.record(model, seconds)
        await self._listen()
        await self._take_over()
        self._dispatch_task = asyncio.create_task(self._dispatcher.run(), name="wirobot-dispatch")
        self._claims_task = asyncio.create_task(self._keep_claims(), name="wirobot-claims")

    async def close(self, *, grace: float = 10.0) -> None:
        """Stop taking jobs. Runs in flight get `grace` seconds to be answered and recorded;
        the rest stays in the database and resumes at the next start."""
        self._closing = True
        background = [t for t in (self._dispatch_task, self._claims_task) if t is not None]
        background += self._asked
        if self._taking_over is not None:
            background.append(self._taking_over)
        for task in background:
            task.cancel()
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
        await asyncio.gather(*tasks.values(), *background, return_exceptions=True)
        tasks.clear()
        # Another process may take the unfinished jobs at once, without waiting for leases.
        with contextlib.suppress(Exception):
            await self.store.jobs.release(self.owner)
        if self._notices is not None:
            await self._notices.close()
        await self._file_writer.close()
        await self.prices.close()

    # -- asking --------------------------------------------------------------------------------

    def subscribe(
        self, job_ids: list[int] | None = None, kinds: Collection[EventKind] | None = None
    ) -> Subscription:
        return self.events.subscribe(job_ids, kinds)

    async def get(self, job_id: int) -> Job | None:
        job = self._book.jobs.get(job_id)
        if job is not None:
            return self._book.snapshot(job)
        return await self.store.jobs.get(job_id)

    def peek(self, job_id: int) -> Job | None:
        """The live job, not a copy: read only. None when this engine no longer holds it."""
        return self._book.jobs.get(job_id)

    def holds(self, job_id: int) -> bool:
        """Whether this engine has the job in hand (waiting in its line, or its own at Wiro)."""
        return job_id in self._book.jobs

    def queue_position(self, job_id: int) -> int | None:
        """1-based place among jobs waiting for a slot; None when not waiting."""
        return self._dispatcher.position(job_id)

    def queue_positions(self) -> dict[int, int]:
        """Every waiting job's place, in one pass (kept until the line or the loads change)."""
        return self._dispatcher.positions()

    @property
    def gate(self) -> WiroGate:
        """When the next Run may go, at Wiro's limits (its back-offs can be tuned)."""
        return self._dispatcher.gate

    @property
    def submissions_paused(self) -> str | None:
        """Why every submission waits (Wiro refused a Run for the balance), in one line; None
        when they go. Events SUBMISSIONS_PAUSED and SUBMISSIONS_RESUMED tell the changes."""
        return self._dispatcher.gate.paused

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
        if prepared.guild is not None:
            self._dispatcher.learn_user_cap(prepared.guild)
        if prepared.budgeted:
            # Checked again and stored under one lock: a burst cannot spend a dollar twice.
            async with self.budgets.admitting():
                await self._admission.check_budget(prepared.request.requester, prepared.price)
                job = await self._store_new(prepared)
        else:
            job = await self._store_new(prepared)
        self._book.adopt(job)
        self._book.publish(job)
        await self._dispatcher.enqueue(job)
        return self._book.snapshot(job)

    async def _store_new(self, prepared: Prepared) -> Job:
        inputs = prepared.inputs
        now = time.time()
        return await self.store.jobs.create(
            NewJob(
                model=prepared.model,
                prompt=str(inputs["prompt"]),
                inputs=inputs,
                seed=int(inputs["seed"]),
                requester=prepared.request.requester,
                created_at=now,
                owner=self.owner,
                lease_until=now + self.settings.claim_lease_seconds,
                estimate=prepared.price.amount,
                status=JobState.WAITING,  # stored straight into the line: one write
            )
        )

    async def _submit(self, job: Job, probe: bool) -> None:
        await self._submitter.submit(job, probe)

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, job_id: int) -> CancelResult:
        """Cancel a job, from any process sharing the database: one this engine holds is
        cancelled here; one waiting elsewhere is cancelled in the store; one another live
        process follows at Wiro is asked of that process (PENDING), which stops it there."""
        if job_id in self._book.jobs:
            return await self._canceller.cancel(job_id)
        jobs = self.store.jobs
        stored = await jobs.get(job_id)
        if stored is None:
            return CancelResult(CancelOutcome.NOT_FOUND, None)
        now = time.time()
        if stored.status.is_local and await jobs.cancel_waiting(job_id, now=now):
            stored = await jobs.get(job_id)
            assert stored is not None
            if await jobs.holder(job_id, now=now) in (None, self.owner):
                # Held by no live process: nobody else will announce it.
                self._book.publish(stored, EventKind.FINISHED)
            return CancelResult(CancelOutcome.DROPPED, stored)
        if stored.status.is_local:
            stored = await jobs.get(job_id)  # it went on meanwhile
            assert stored is not None
        if stored.status.is_final:
            return CancelResult(CancelOutcome.ALREADY_FINISHED, stored)
        await jobs.request_cancel(job_id)
        stored.cancel_requested = True
        if job_id not in self._book.jobs and await self._book.claim(stored):
            if job_id in self._book.jobs:  # taken over meanwhile, here: cancelled as ours
                return await self._canceller.cancel(job_id)
            # Nobody alive follows it (its process died): this one stops it at Wiro.
            self._book.adopt(stored)
            self._book.hold_slot(stored)
            if stored.task_id is not None:
                result = await self._canceller.cancel(job_id)
                if result.outcome in (CancelOutcome.FAILED, CancelOutcome.ALREADY_FINISHED):
                    self._book.spawn(stored, self._follower.follow(stored))
                return result
            self._book.spawn(
                stored, self._submitter.recover(stored, self._submitter.sent_inputs(stored))
            )
            return CancelResult(CancelOutcome.PENDING, stored)
        return CancelResult(CancelOutcome.ASKED, stored)

    # -- other processes -----------------------------------------------------------------------

    async def _listen(self) -> None:
        """Hear the other processes sharing the database (PostgreSQL), and take a nonce
        stripe of this process's own for the Wiro key they share."""
        if self._notices is None:
            return
        try:
            await self._notices.listen(self._heard)
            stripe = await self._notices.hold_stripe(NONCE_STRIPES)
        except Exception:
            log.exception("cannot listen to the database's notices; looking now and then")
            return
        if stripe is None:
            log.warning("every nonce stripe is held: more than %d processes?", NONCE_STRIPES)
        else:
            self.client.credentials.nonces.use_stripe(stripe, NONCE_STRIPES)

    def _heard(self, notice: str) -> None:
        kind, _, arg = notice.partition(" ")
        if kind == "freed":
            self._dispatcher.heard_freed()
        elif kind == "released" and not self._closing:
            # A process stopping gave up its jobs: take them now, not at the next look.
            if self._taking_over is None or self._taking_over.done():
                self._taking_over = asyncio.create_task(
                    self._take_over_now(), name="wirobot-take-over"
                )
        elif kind == "cancel" and arg.isdigit():
            job = self._book.jobs.get(int(arg))
            if job is not None and not job.cancel_requested and not self._closing:
                self._on_cancel_asked(job)

    async def _take_over_now(self) -> None:
        try:
            await self._take_over()
        except Exception:
            log.exception("taking over released jobs failed; the next look tries again")

    def _on_cancel_asked(self, job: Job) -> None:
        task = asyncio.create_task(self._cancel_asked(job), name=f"wirobot-cancel-{job.id}")
        self._asked.add(task)
        task.add_done_callback(self._asked.discard)

    async def _cancel_asked(self, job: Job) -> None:
        """Another process asked to cancel a job this one holds: cancel it here, as if the
        Cancel were pressed here (or, if it was cancelled in line there, say so)."""
        try:
            if job.status.is_local:
                stored = await self.store.jobs.get(job.id)
                if stored is not None and stored.status.is_final:
                    await self._finished_elsewhere(job, stored)
                    return
            result = await self.cancel(job.id)
            log.info("job %s: cancel asked by another process: %s", job.id, result.outcome)
        except Exception:
            log.exception("job %s: a cancel asked by another process failed", job.id)

    async def _look_at_others(self) -> None:
        """The safety net under the notices: cancels asked of this process's jobs, and
        jobs in its line that another process finished."""
        if self._notices is not None and not self._notices.listening:
            await self._listen()
        book = self._book
        for job_id in await self.store.jobs.cancels_asked(self.owner):
            job = book.jobs.get(job_id)
            if job is not None and not job.cancel_requested:
                self._on_cancel_asked(job)
        waiting = self._dispatcher.line_ids()
        for stored in await self.store.jobs.finished_among(waiting):
            job = book.jobs.get(stored.id)
            if job is not None:
                await self._finished_elsewhere(job, stored)

    async def _finished_elsewhere(self, job: Job, stored: Job) -> None:
        """A job in this process's line that another process finished (cancelled): out of
        the line; announced here when it is this process's own (the other announced it
        otherwise), forgotten either way."""
        book = self._book
        async with book.lock(job):
            if job.id not in book.jobs or not job.status.is_local:
                return
            self._dispatcher.line.remove(job.id)
            if await self.store.jobs.holder(job.id) == self.owner:
                book.finished_elsewhere(job, stored)
            else:
                book.forget(job)

    # -- resuming and claims ------------------------------------------------------------------

    async def _take_over(self) -> None:
        """Resume every unfinished job of the database that no live process holds. A job
        that waits is claimed only when it is Run (so processes share the waiting work); one
        that reached Wiro is claimed now, to be followed by this process alone."""
        for job in await self.store.jobs.unclaimed(now=time.time()):
            if job.id in self._book.jobs:
                continue
            claimed = job.status.is_local or await self._book.claim(job)
            if claimed and job.id not in self._book.jobs:  # not adopted meanwhile (a cancel)
                await self._resume(job)

    async def _keep_claims(self) -> None:
        """Renew this process's claims, and take over jobs whose process died."""
        every = self.settings.claim_lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            try:
                # Jobs past their claim before the renewal: each must still be ours after it.
                claimed = [j for j in self._book.jobs.values() if not j.status.is_local]
                held = await self.store.jobs.renew(
                    self.owner, until=time.time() + self.settings.claim_lease_seconds
                )
                self._let_go_of_lost_claims(claimed, held)
                await self._take_over()
                await self._look_at_others()
            except Exception:
                log.exception("renewing job claims failed; trying again in %.0f s", every)

    def _let_go_of_lost_claims(self, claimed: list[Job], held: set[int]) -> None:
        """Jobs at Wiro that another process took over (this one stalled past its lease):
        that process follows them now; this one stops."""
        book = self._book
        for job in claimed:
            if job.id in held or job.status.is_final or job.id not in book.jobs:
                continue
            log.warning("job %s: another process took it over; letting it go", job.id)
            work = book.tasks.pop(job.id, None)
            if work is not None:
                work.cancel()
            book.free_slot(job)
            book.forget(job)

    async def _resume(self, job: Job) -> None:
        book = self._book
        book.adopt(job)
        book.publish(job, EventKind.ADOPTED)
        if job.guild_id is not None:
            self._dispatcher.learn_user_cap(await self.store.guilds.get(job.guild_id))
        if job.status in (JobState.CREATED, JobState.WAITING):
            if job.cancel_requested:
                await book.finish(job, JobState.CANCELLED, slot_held=False)
            else:
                log.info("resuming job %s: waiting for a slot", job.id)
                await self._dispatcher.enqueue(job)
            return
        book.hold_slot(job)
        if job.task_id is None:
            # Its Run was sent but the answer never stored: it may have created a billed
            # task. Find it; never send the Run again.
            log.info("resuming job %s: looking for the task its Run may have created", job.id)
            book.spawn(job, self._submitter.recover(job, self._submitter.sent_inputs(job)))
            return
        log.info("resuming job %s: following Wiro task %s", job.id, job.task_id)
        if job.cancel_requested:
            book.spawn(job, self._cancel_resumed(job))
        else:
            book.spawn(job, self._follower.follow(job))

    async def _cancel_resumed(self, job: Job) -> None:
        result = await self.cancel(job.id)
        if result.outcome in (CancelOutcome.FAILED, CancelOutcome.ALREADY_FINISHED):
            await self._follower.follow(job)
