"""Submission: send one job's Run to Wiro and act on the answer.

Before the Run, the job is claimed in the store (compare-and-set on its state and owner), so no
job is ever Run twice, whatever processes share the database. The task id is stored as soon as
Wiro answers. Wiro's refusals for its limits (96, 97, 429) are not failures: the job goes back
to the front of the line and the `WiroGate` decides when to try again. A Run whose answer was
lost is never sent again blindly: the task it may have created is looked for and adopted.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from bot.catalog.catalog import Catalog
from bot.catalog.validation import InvalidInput, to_wire
from bot.jobs.book import JobBook
from bot.jobs.dispatch import Dispatcher
from bot.jobs.events import EventKind, JobEvent
from bot.jobs.following import Follower
from bot.jobs.job import ErrorKind, Job, JobState
from bot.jobs.lost_runs import LostRuns
from bot.jobs.wording import error_kind
from bot.store import Claim
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import (
    ConcurrencyLimit,
    InsufficientBalance,
    InvalidResponse,
    RateLimited,
    WiroConnectionError,
    WiroError,
)
from bot.wiro.types import WAITING_STATUSES, Task, TaskStatus

log = logging.getLogger(__name__)

BALANCE_PAUSE = "Wiro's balance for this project is too low; jobs wait until it is topped up"


class Submitter:
    def __init__(
        self,
        book: JobBook,
        client: WiroClient,
        catalog: Catalog,
        dispatcher: Dispatcher,
        follower: Follower,
        lost_runs: LostRuns,
        cancel: Callable[[int], Awaitable[object]],
        closing: Callable[[], bool],
    ) -> None:
        self._book = book
        self._client = client
        self._catalog = catalog
        self._dispatcher = dispatcher
        self._follower = follower
        self._lost_runs = lost_runs
        self._cancel = cancel
        self._closing = closing

    def payload(self, job: Job) -> dict[str, Any] | None:
        """The Run body of a job, or None when its model is gone."""
        model = self._catalog.get(job.model)
        return None if model is None else to_wire(model, job.inputs)

    def sent_inputs(self, job: Job) -> dict[str, Any]:
        """What the job's Run carried, as far as can be known now (to recognise its task)."""
        try:
            return self.payload(job) or _sent_inputs(job)
        except InvalidInput:
            return _sent_inputs(job)

    async def submit(self, job: Job, probe: bool = False) -> None:
        try:
            await self._submit(job, probe)
        except BaseException:
            # A bug or a shutdown: the gate must not wait for this probe's answer forever.
            self._dispatcher.gate.not_answered(probe)
            raise

    async def _submit(self, job: Job, probe: bool) -> None:
        book, gate = self._book, self._dispatcher.gate
        payload = self.payload(job)
        if payload is None:
            gate.not_answered(probe)
            await book.finish(
                job,
                JobState.FAILED,
                error=f"The model {job.model} is no longer available.",
                kind=ErrorKind.REJECTED,
            )
            return
        dispatcher = self._dispatcher
        heard = dispatcher.freed_heard
        async with book.lock(job):
            if job.status is not JobState.WAITING:
                gate.not_answered(probe)
                return  # cancelled while it was being picked
            claim = await book.claim_run(job, dispatcher.limits_for(job))
        if claim is Claim.GONE:
            gate.not_answered(probe)
            return  # another process on this database has it, or it was cancelled there
        if claim is not Claim.RUN:
            # The other processes' jobs at Wiro fill a limit we share (or its row was busy):
            # not Wiro's refusal, so the gate is left alone; the job waits first in line
            # until a slot frees anywhere.
            gate.not_answered(probe)
            dispatcher.held_back(job, claim, heard=heard)
            await self._requeue(job)
            return
        try:
            result = await self._client.run(job.model, payload)
        except ConcurrencyLimit:
            # Not a failure: Wiro is full. Our other jobs at Wiro are its limit for now.
            gate.full(book.at_wiro)
            log.info(
                "job %s: Wiro's concurrency limit reached with %d other jobs of ours at Wiro",
                job.id,
                book.at_wiro,
            )
            await self._requeue(job)
            return
        except InsufficientBalance:
            if gate.out_of_balance(BALANCE_PAUSE):
                log.warning("Wiro refused a Run for the project's balance: submissions paused")
                book.events.publish(
                    JobEvent(EventKind.SUBMISSIONS_PAUSED, book.snapshot(job), detail=BALANCE_PAUSE)
                )
            await self._requeue(job)
            return
        except RateLimited as exc:
            gate.slow_down(exc.retry_after)
            log.info("job %s: Wiro asked to slow down (HTTP 429); it waits", job.id)
            await self._requeue(job)
            return
        except (WiroConnectionError, InvalidResponse) as exc:
            gate.not_answered(probe)
            if isinstance(exc, WiroConnectionError) and not exc.reached:
                # It certainly never reached Wiro (the client already tried again): Wiro is
                # down, and the person hears so now rather than wait without end.
                await book.finish(job, JobState.FAILED, error=str(exc), kind=error_kind(exc))
                return
            log.warning(
                "job %s: the answer to its Run was lost (%s); looking for its task", job.id, exc
            )
            await self.recover(job, payload)
            return
        except WiroError as exc:
            gate.not_answered(probe)
            await book.finish(job, JobState.FAILED, error=str(exc), kind=error_kind(exc))
            return
        if gate.accepted(probe):
            log.warning("a Run succeeded again: submissions resume")
            book.events.publish(JobEvent(EventKind.SUBMISSIONS_RESUMED, book.snapshot(job)))
        await self._take(job, result.taskid, result.socketaccesstoken, TaskStatus.QUEUE)

    async def _take(self, job: Job, task_id: str, token: str, status: TaskStatus) -> None:
        """Record the job's task at Wiro, then follow it (or cancel it, if asked meanwhile)."""
        book = self._book
        async with book.lock(job):
            state = JobState.QUEUED if status in WAITING_STATUSES else JobState.RUNNING
            await book.set(
                job,
                status=state,
                task_id=task_id,
                task_token=token,
                wiro_status=status.value,
            )
            cancel_now = job.cancel_requested
        if cancel_now:
            await self._cancel(job.id)
        elif not self._closing():
            await self._follower.follow(job)

    async def _requeue(self, job: Job) -> None:
        """Wiro did not take the Run: the job goes back first in line."""
        book = self._book
        book.free_slot(job)
        async with book.lock(job):
            await book.set(job, submitted_at=None)
            if job.cancel_requested:
                await book.finish(job, JobState.CANCELLED, slot_held=False)
            else:
                await self._dispatcher.enqueue(job, front=True)

    async def recover(self, job: Job, payload: Mapping[str, Any]) -> None:
        """The Run was sent but its answer never came (or never got stored): find the task
        it created and adopt it; or say plainly that there is none, or that Wiro cannot
        tell. Never send it again: that could pay twice."""
        search = await self._lost_runs.search(job, payload)
        if search.found:
            task, *extra = search.found
            for other in extra:
                await self._kill_stray(job, other)
            log.warning(
                "job %s: adopted Wiro task %s found after its Run's answer was lost",
                job.id,
                task.id,
            )
            if task.is_terminal:
                async with self._book.lock(job):
                    await self._book.set(
                        job, task_id=task.id, task_token=task.socketaccesstoken or None
                    )
                await self._follower.complete(job, task)
                return
            await self._take(job, task.id, task.socketaccesstoken, task.status)
            return
        if search.answered and job.cancel_requested:
            # Asked to cancel meanwhile, and Wiro has no task for it: nothing left to stop.
            await self._book.finish(job, JobState.CANCELLED)
            return
        if search.answered:
            error = (
                "Wiro's answer to this job was lost on the way, and Wiro shows no task for it, "
                "so nothing was charged. Please try again."
            )
        else:
            error = (
                "Wiro's answer to this job was lost on the way, and Wiro could not tell whether "
                "the job started. It was not sent again, so that it is not paid for twice; if it "
                "did start, its cost shows in the Wiro project."
            )
        await self._book.finish(job, JobState.FAILED, kind=ErrorKind.LOST, error=error)

    async def _kill_stray(self, job: Job, task: Task) -> None:
        """A second task matching one job: nobody would ever collect it, so it is stopped."""
        if task.is_terminal:
            return
        log.warning("job %s: stopping stray Wiro task %s (a second match)", job.id, task.id)
        try:
            if task.status in WAITING_STATUSES:
                await self._client.cancel_task(task.id)
            else:
                await self._client.kill_task(task.id)
        except WiroError as exc:
            log.error("job %s: stray Wiro task %s could not be stopped: %s", job.id, task.id, exc)


def _sent_inputs(job: Job) -> dict[str, Any]:
    return {"prompt": job.inputs.get("prompt", job.prompt), "seed": job.seed}
