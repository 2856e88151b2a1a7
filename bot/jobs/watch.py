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
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from bot.jobs.job import Job
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import WiroError
from bot.wiro.types import Task, TaskProgress, TaskStatus

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
        #: How many jobs of each model are being watched now.
        self.crowd: Counter[str] = Counter()
        self._window = window
        self._wakers: dict[str, set[asyncio.Future[bool]]] = {}
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

    async def sleep(self, model: str, seconds: float) -> bool:
        """Sleep, or less if this model's estimate changes meanwhile: False then."""
        loop = asyncio.get_running_loop()
        waker: asyncio.Future[bool] = loop.create_future()
        handle = loop.call_later(max(seconds, 0.0), _resolve, waker, True)
        wakers = self._wakers.setdefault(model, set())
        wakers.add(waker)
        try:
            return await waker
        finally:
            handle.cancel()
            wakers.discard(waker)

    def wake(self, model: str) -> None:
        for waker in tuple(self._wakers.get(model, ())):
            _resolve(waker, False)


def _resolve(future: asyncio.Future[bool], slept: bool) -> None:
    if not future.done():
        future.set_result(slept)


def _duration(task: Task, submitted: float, previous_poll: float) -> float:
    """Seconds from submission to the end at Wiro: between the last two polls, and where
    Wiro's own end time (whole seconds, so +0.5) puts it when it says."""
    now = time.time()
    earliest, latest = previous_poll - submitted, now - submitted
    wiro_end = task.finished_unix
    guess = (wiro_end + 0.5 - submitted) if wiro_end else (earliest + latest) / 2
    return min(max(guess, earliest), latest)


@dataclass(frozen=True, slots=True)
class PollSchedule:
    min_interval: float = 0.4
    max_interval: float = 10.0
    #: Pace of one job while its model's duration is unknown.
    discovery_interval: float = 2.0
    #: While a model's duration is unknown, all its jobs together poll about this often per
    #: second: one of them notices the first finish soon, and that teaches the duration.
    discovery_rate: float = 100.0

    def next_delay(
        self,
        elapsed: float,
        expected: float | None,
        rng: random.Random,
        *,
        first: bool = False,
        crowd: int = 1,
    ) -> float:
        """Seconds until the next Task/Detail, `elapsed` seconds after submission, with
        `crowd` jobs of the same model being watched."""
        lo, hi = self.min_interval, self.max_interval
        if expected is None:
            pace = max(self.discovery_interval, elapsed * 0.25, crowd / self.discovery_rate)
            pace = min(pace, hi / 2)
            # Random phases spread the polls of many jobs evenly.
            return pace * (rng.uniform(0.1, 1.0) if first else rng.uniform(0.9, 1.1))
        until_dense = expected - lo - elapsed
        if until_dense > 2 * lo:
            # Before the usual finish: one look half-way (to report queued -> running), then
            # straight to the dense window.
            return min(hi, until_dense / 2 if elapsed < expected / 3 else until_dense)
        overdue = elapsed - expected
        # A little jitter keeps many jobs of one model from polling in lockstep.
        if overdue < 2.0:
            return lo * rng.uniform(0.8, 1.2)
        return min(hi, max(lo, 0.2 * overdue)) * rng.uniform(0.9, 1.1)


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

    async def watch(self, job: Job, on_update: OnUpdate) -> Task:
        assert job.task_id is not None
        submitted = job.submitted_at or time.time()
        self._estimates.crowd[job.model] += 1
        try:
            return await self._watch(job, on_update, submitted)
        finally:
            self._estimates.crowd[job.model] -= 1

    async def _watch(self, job: Job, on_update: OnUpdate, submitted: float) -> Task:
        assert job.task_id is not None
        estimates = self._estimates
        last_seen: tuple[TaskStatus, TaskProgress | None] | None = None
        errors = 0
        first = True
        previous_poll = submitted
        while True:
            elapsed = time.time() - submitted
            expected = estimates.get(job.model)
            delay = self._schedule.next_delay(
                elapsed, expected, self._rng, first=first, crowd=estimates.crowd[job.model]
            )
            first = False
            if not await estimates.sleep(job.model, delay):
                # Woken early by a new estimate: re-plan, spread out so that the jobs of a
                # crowded model do not all poll in the same instant.
                await asyncio.sleep(self._rng.uniform(0, self._schedule.min_interval * 2))
                continue
            try:
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
            if (task.status, task.progress) != last_seen or task.is_terminal:
                last_seen = (task.status, task.progress)
                await on_update(task)
            if task.is_terminal:
                if task.succeeded:
                    estimates.record(job.model, _duration(task, submitted, previous_poll))
                return task
            previous_poll = time.time()
