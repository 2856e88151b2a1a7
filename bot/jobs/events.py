"""Job events: an async subscription the CLI and the Discord layer consume."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
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
    #: This process took the job from the database (it was another's, which died, or this
    #: process restarted): whoever shows jobs to people follows it from here on.
    ADOPTED = "adopted"


@dataclass(frozen=True, slots=True)
class JobEvent:
    kind: EventKind
    job: Job  # a snapshot: later changes to the job do not show through
    progress: TaskProgress | None = None
    detail: str | None = None


class Subscription:
    """Events for some jobs (or all), in order. Use as `async with` and `async for`."""

    def __init__(
        self,
        bus: EventBus,
        job_ids: Collection[int] | None,
        kinds: Collection[EventKind] | None = None,
    ) -> None:
        self._bus = bus
        self.job_ids = set(job_ids) if job_ids is not None else None
        self.kinds = frozenset(kinds) if kinds is not None else None
        self._queue: asyncio.Queue[JobEvent] = asyncio.Queue()

    def wants(self, event: JobEvent) -> bool:
        if self.kinds is not None and event.kind not in self.kinds:
            return False
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


Listener = Callable[[JobEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._listeners: dict[EventKind, list[Listener]] = {}

    def listen(self, listener: Listener, kinds: Collection[EventKind]) -> Callable[[], None]:
        """Call `listener` at once for each event of these kinds (rare ones: it runs inside
        `publish`, so it must not block); returns what stops it."""
        for kind in kinds:
            self._listeners.setdefault(kind, []).append(listener)

        def stop() -> None:
            for kind in kinds:
                with contextlib.suppress(ValueError):
                    self._listeners.get(kind, []).remove(listener)

        return stop

    def subscribe(
        self,
        job_ids: Collection[int] | None = None,
        kinds: Collection[EventKind] | None = None,
    ) -> Subscription:
        """Events of these jobs (None: all), of these kinds (None: all)."""
        subscription = Subscription(self, job_ids, kinds)
        self._subscriptions.add(subscription)
        return subscription

    def publish(self, event: JobEvent) -> None:
        for listener in tuple(self._listeners.get(event.kind, ())):
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the engine's announcements
                log.exception("an event listener failed on %s", event.kind)
        for subscription in tuple(self._subscriptions):
            if subscription.wants(event):
                subscription._put(event)
