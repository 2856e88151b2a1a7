"""Following a task at Wiro until it ends.

`TaskWatcher` is what the engine needs; `PollingWatcher` implements it with Task/Detail. A push
watcher on Wiro's WebSocket can implement the same protocol later (keeping a slow poll as a
fallback, as the API notes advise).

Polling keeps both numbers small, the calls per job and the delay between Wiro finishing and the
engine knowing: each model's usual duration is learned, polls are sparse before it and dense
around it, then back off. Until a model's duration is known, its jobs poll at a moderate pace
with random phases, so that together they notice the first finish quickly; that finish teaches
the duration and wakes every sleeping watcher of that model to re-plan.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.jobs.job import Job
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import WiroError
from bot.wiro.types import Task

log = logging.getLogger(__name__)

OnUpdate = Callable[[Task], Awaitable[None]]


class TaskWatcher(Protocol):
    async def watch(self, job: Job, on_update: OnUpdate) -> Task:
        """Return the task once terminal, calling `on_update` whenever it changes."""
        ...


class DurationEstimates:
    """Per model: the median seconds from submission to finish of recent jobs."""

    def __init__(self, known: dict[str, float] | None = None, *, window: int = 25) -> None:
        self._samples: dict[str, deque[float]] = {}
        self._window = window
        self._wakers: dict[str, set[asyncio.Future[None]]] = {}
        for model, seconds in (known or {}).items():
            self._samples[model] = deque([seconds], maxlen=window)

    def get(self, model: str) -> float | None:
        samples = self._samples.get(model)
        return statistics.median(samples) if samples else None

    def record(self, model: str, seconds: float) -> None:
        before = self.get(model)
        self._samples.setdefault(model, deque(maxlen=self._window)).append(max(seconds, 0.0))
        after = self.get(model)
        # Re-plan sleeping watchers when the estimate appears or moves by more than a fifth.
        if before is None or (after is not None and abs(after - before) > 0.2 * before):
            self.wake(model)

    async def sleep(self, model: str, seconds: float) -> None:
        """Sleep, or less if this model's estimate changes meanwhile."""
        loop = asyncio.get_running_loop()
        waker: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(max(seconds, 0.0), _resolve, waker)
        wakers = self._wakers.setdefault(model, set())
        wakers.add(waker)
        try:
            await waker
        finally:
            handle.cancel()
            wakers.discard(waker)

    def wake(self, model: str) -> None:
        for waker in tuple(self._wakers.get(model, ())):
            _resolve(waker)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class PollSchedule:
    min_interval: float = 0.4
    max_interval: float = 10.0
    #: Pace while a model's duration is unknown.
    discovery_interval: float = 2.0

    def next_delay(self, elapsed: float, expected: float | None, rng: random.Random) -> float:
        """Seconds until the next Task/Detail, `elapsed` seconds after submission."""
        lo, hi = self.min_interval, self.max_interval
        if expected is None:
            # Random phase: many jobs of one unknown model spread their polls evenly.
            if elapsed == 0:
                return rng.uniform(lo, self.discovery_interval)
            return min(hi, max(self.discovery_interval, elapsed * 0.25))
        until_dense = expected - lo - elapsed
        if until_dense > 2 * lo:
            # Before the usual finish: one look half-way (to report queued -> running), then
            # straight to the dense window.
            return min(hi, until_dense / 2 if elapsed < expected / 3 else until_dense)
        overdue = elapsed - expected
        if overdue < 2.0:
            return lo
        return min(hi, max(lo, 0.2 * overdue))


class PollingWatcher:
    def __init__(
        self,
        client: WiroClient,
        estimates: DurationEstimates,
        schedule: PollSchedule,
        *,
        rng: random.Random | None = None,
        max_consecutive_errors: int = 8,
    ) -> None:
        self._client = client
        self._estimates = estimates
        self._schedule = schedule
        self._rng = rng or random.Random()
        self._max_errors = max_consecutive_errors
        self.detail_calls = 0

    async def watch(self, job: Job, on_update: OnUpdate) -> Task:
        assert job.task_id is not None
        submitted = job.submitted_at or time.time()
        last_status = None
        errors = 0
        while True:
            elapsed = time.time() - submitted
            delay = self._schedule.next_delay(elapsed, self._estimates.get(job.model), self._rng)
            await self._estimates.sleep(job.model, delay)
            try:
                self.detail_calls += 1
                task = await self._client.task_detail(task_id=job.task_id)
            except WiroError as exc:
                # The client already retried; a retryable error here means Wiro is struggling:
                # keep watching (the job's deadline bounds this), give up on the rest.
                errors += 1
                if not exc.retryable or errors >= self._max_errors:
                    raise
                log.warning("job %s: Task/Detail failed (%s), will retry", job.id, exc)
                await asyncio.sleep(min(self._schedule.max_interval, 2.0**errors))
                continue
            errors = 0
            if task.status != last_status or task.is_terminal:
                last_status = task.status
                await on_update(task)
            if task.is_terminal:
                return task
