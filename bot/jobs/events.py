"""Job events: an async subscription the CLI and the Discord layer consume."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from bot.jobs.job import Job
from bot.wiro.types import TaskProgress

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    STATUS = "status"  # the job's state or Wiro's status changed
    PROGRESS = "progress"  # generation progress, when Wiro tells it
    FINISHED = "finished"  # final: succeeded, failed, cancelled or timed out
    #: Wiro refused a Run for the project's balance: every submission waits (`detail` says
    #: why); the job is the one whose Run was refused.
    SUBMISSIONS_PAUSED = "submissions_paused"
    #: A Run succeeded again after a pause; the job is the one that went through.
    SUBMISSIONS_RESUMED = "submissions_resumed"


@dataclass(frozen=True, slots=True)
class JobEvent:
    kind: EventKind
    job: Job  # a snapshot: later changes to the job do not show through
    progress: TaskProgress | None = None
    detail: str | None = None


class Subscription:
    """Events for some jobs (or all), in order. Use as `async with` and `async for`."""

    def __init__(self, bus: EventBus, job_ids: Collection[int] | None) -> None:
        self._bus = bus
        self.job_ids = set(job_ids) if job_ids is not None else None
        self._queue: asyncio.Queue[JobEvent] = asyncio.Queue()

    def wants(self, event: JobEvent) -> bool:
        return self.job_ids is None or event.job.id in self.job_ids

    def follow(self, job_id: int) -> None:
        """Also receive the events of this job."""
        if self.job_ids is not None:
            self.job_ids.add(job_id)

    def _put(self, event: JobEvent) -> None:
        self._queue.put_nowait(event)

    async def get(self) -> JobEvent:
        return await self._queue.get()

    def take(self) -> list[JobEvent]:
        """Every event received and not yet read, without waiting."""
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def close(self) -> None:
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> AsyncIterator[JobEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[JobEvent]:
        while True:
            yield await self._queue.get()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, job_ids: Collection[int] | None = None) -> Subscription:
        subscription = Subscription(self, job_ids)
        self._subscriptions.add(subscription)
        return subscription

    def publish(self, event: JobEvent) -> None:
        for subscription in tuple(self._subscriptions):
            if subscription.wants(event):
                subscription._put(event)
