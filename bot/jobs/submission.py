"""Submission: send one job's Run to Wiro and act on the answer.

The job is marked SUBMITTED in the store before the Run is sent, and the task id is stored as
soon as Wiro answers; a Run whose answer was lost is never sent again blindly (it may have
created a billed task).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from bot.catalog.catalog import Catalog
from bot.catalog.validation import to_wire
from bot.jobs.book import JobBook
from bot.jobs.dispatch import Dispatcher
from bot.jobs.following import Follower
from bot.jobs.job import ErrorKind, Job, JobState
from bot.jobs.wording import error_kind
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import ConcurrencyLimit, RateLimited, WiroError
from bot.wiro.types import TaskStatus

log = logging.getLogger(__name__)


class Submitter:
    def __init__(
        self,
        book: JobBook,
        client: WiroClient,
        catalog: Catalog,
        dispatcher: Dispatcher,
        follower: Follower,
        cancel: Callable[[int], Awaitable[object]],
        closing: Callable[[], bool],
    ) -> None:
        self._book = book
        self._client = client
        self._catalog = catalog
        self._dispatcher = dispatcher
        self._follower = follower
        self._cancel = cancel
        self._closing = closing

    async def submit(self, job: Job) -> None:
        book, dispatcher = self._book, self._dispatcher
        model = self._catalog.get(job.model)
        if model is None:
            await book.finish(
                job,
                JobState.FAILED,
                error=f"The model {job.model} is no longer available.",
                kind=ErrorKind.REJECTED,
            )
            return
        payload = to_wire(model, job.inputs)
        async with book.lock(job):
            if job.status is not JobState.WAITING:
                return  # cancelled while it was being picked
            await book.set(job, status=JobState.SUBMITTED, submitted_at=time.time())
        try:
            result = await self._client.run(job.model, payload)
        except ConcurrencyLimit:
            # Not a failure: wait for one of our tasks to end, then try again, first in line.
            log.info("job %s: Wiro's concurrency limit reached; waiting for a free slot", job.id)
            await self._requeue(job, dispatcher.wiro_backoff)
            dispatcher.wiro_backoff = min(dispatcher.wiro_backoff * 2, 30.0)
            return
        except RateLimited as exc:
            await self._requeue(job, exc.retry_after or dispatcher.wiro_backoff)
            return
        except WiroError as exc:
            await book.finish(job, JobState.FAILED, error=str(exc), kind=error_kind(exc))
            return
        dispatcher.wiro_backoff = 1.0
        async with book.lock(job):
            await book.set(
                job,
                status=JobState.QUEUED,
                task_id=result.taskid,
                task_token=result.socketaccesstoken,
                wiro_status=TaskStatus.QUEUE.value,
            )
            cancel_now = job.cancel_requested
        if cancel_now:
            await self._cancel(job.id)
        elif not self._closing():
            await self._follower.follow(job)

    async def _requeue(self, job: Job, pause: float) -> None:
        """Wiro did not take the Run: put the job back first in line, pause submissions."""
        book = self._book
        book.free_slot(job)
        self._dispatcher.wiro_full_until = time.monotonic() + pause
        async with book.lock(job):
            await book.set(job, submitted_at=None)
            if job.cancel_requested:
                await book.finish(job, JobState.CANCELLED, slot_held=False)
            else:
                await self._dispatcher.enqueue(job, front=True)
