"""Following a task at Wiro until it ends.

`TaskWatcher` is what the engine needs; `PollingWatcher` implements it with Task/Detail, and
`bot.jobs.follow.SocketWatcher` with Wiro's WebSocket, falling back to this one.

Polling keeps both numbers small, the calls per job and the delay between Wiro finishing and the
engine knowing: a job's duration is predicted from its own inputs (steps x pixels x samples,
scaled by what the model's recent jobs took), polls are sparse before it, once a second in the
window where such jobs end, then back off. Until a model's duration is known, its jobs poll at
Wiro's MCP client's pace with random phases, so that together they notice the first finish
quickly; that finish teaches the duration and wakes every sleeping watcher of that model to
re-plan. No task is polled more than once a second, and a token bucket caps Task/Detail calls
per second over all tasks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import statistics
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bot.jobs.job import Job
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import WiroError
from bot.wiro.types import Task, TaskProgress, TaskStatus

log = logging.getLogger(__name__)

OnUpdate = Callable[[Task], Awaitable[None]]
#: Told a task's status and progress as a message arrives, without waiting: True if that
#: was all the change needed, False to be told it as a Task through `OnUpdate` instead.
OnChange = Callable[[TaskStatus, TaskProgress | None], bool]


class TaskWatcher(Protocol):
    async def watch(self, job: Job, on_update: OnUpdate, on_change: OnChange | None = None) -> Task:
        """Return the task once terminal, calling `on_update` whenever it changes, or
        first `on_change` if given (a task prints a line per step and passes a dozen
        statuses: a Task and a task switch each were most of the work of following
        thousands)."""
        ...


def job_work(inputs: Mapping[str, Any]) -> float | None:
    """How much work a job asks for: steps x pixels x samples (missing ones count as 1), or
    None when it names none of them. A model's duration grows about in proportion."""
    work, named = 1.0, False
    for name in ("steps", "width", "height", "samples"):
        value = inputs.get(name)
        if value is None or value == "":
            continue
        try:
            number = float(str(value))
        except ValueError:
            continue
        if number > 0:
            work *= number
            named = True
    return work if named else None


@dataclass(frozen=True, slots=True)
class _Sample:
    seconds: float
    work: float | None


class DurationEstimates:
    """Per model: recent durations (submission to finish) with the work each job asked for,
    and how far reality strayed from the predictions, so that a job's duration can be
    predicted from its own inputs and its polls packed around that time."""

    def __init__(self, known: dict[str, float] | None = None, *, window: int = 25) -> None:
        self._samples: dict[str, deque[_Sample]] = {}
        #: actual / predicted of recent jobs, per model.
        self._ratios: dict[str, deque[float]] = {}
        #: How many jobs of each model are being watched now.
        self.crowd: Counter[str] = Counter()
        self._window = window
        self._wakers: dict[str, set[asyncio.Future[bool]]] = {}
        for model, seconds in (known or {}).items():
            self._samples[model] = deque([_Sample(seconds, None)], maxlen=window)

    def get(self, model: str) -> float | None:
        """The model's median duration, whatever the inputs."""
        samples = self._samples.get(model)
        return statistics.median(s.seconds for s in samples) if samples else None

    def predict(self, model: str, work: float | None = None) -> float | None:
        """Seconds a job of `model` asking for `work` should take; None while unknown.

        Fits seconds = fixed + rate x work over recent jobs when their work differs enough,
        else scales the median seconds-per-work; without work, the model's median."""
        samples = self._samples.get(model)
        if not samples:
            return None
        if work is None:
            return self.get(model)
        measured = [(s.work, s.seconds) for s in samples if s.work]
        if not measured:
            return self.get(model)
        works = [w for w, _ in measured]
        if len(measured) >= 3 and max(works) > 1.3 * min(works):
            fit = _line(measured)
            if fit is not None:
                fixed, rate = fit
                return fixed + rate * work
        return statistics.median(sec / w for w, sec in measured) * work

    def spread(self, model: str) -> tuple[float, float]:
        """Low and high multiples of a prediction between which this model's jobs end
        (about the 5th and 95th percentiles of recent jobs)."""
        ratios = sorted(self._ratios.get(model, ()))
        if len(ratios) < 5:
            return 0.85, 1.2
        low = ratios[int(0.05 * (len(ratios) - 1))]
        high = ratios[math.ceil(0.95 * (len(ratios) - 1))]
        return min(max(low, 0.3), 0.97), max(min(high, 3.0), 1.03)

    def record(
        self,
        model: str,
        seconds: float,
        work: float | None = None,
        *,
        predicted: float | None = None,
    ) -> None:
        before = self.get(model)
        seconds = max(seconds, 0.0)
        self._samples.setdefault(model, deque(maxlen=self._window)).append(_Sample(seconds, work))
        if predicted:
            self._ratios.setdefault(model, deque(maxlen=self._window)).append(seconds / predicted)
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


def _line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares seconds = fixed + rate x work, if it is a sensible line."""
    n = len(points)
    mean_w = sum(w for w, _ in points) / n
    mean_s = sum(s for _, s in points) / n
    var = sum((w - mean_w) ** 2 for w, _ in points)
    if var <= 0:
        return None
    rate = sum((w - mean_w) * (s - mean_s) for w, s in points) / var
    fixed = mean_s - rate * mean_w
    if rate <= 0 or fixed < -0.1 * mean_s:
        return None
    return max(fixed, 0.0), rate


def _resolve(future: asyncio.Future[bool], slept: bool) -> None:
    if not future.done():
        future.set_result(slept)


class DetailRateLimit:
    """A token bucket shared by every watcher: at most `rate` Task/Detail calls a second on
    average, bursts up to `rate`. Callers queue in order when it is empty."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._updated = time.monotonic()

    async def acquire(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.rate, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= 1
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.rate)


def _duration(task: Task, submitted: float, previous_poll: float) -> float:
    """Seconds from submission to the end at Wiro: between the last two polls, and where
    Wiro's own end time (whole seconds, so +0.5) puts it when it says."""
    now = time.time()
    earliest, latest = previous_poll - submitted, now - submitted
    wiro_end = task.finished_unix
    guess = (wiro_end + 0.5 - submitted) if wiro_end else (earliest + latest) / 2
    return min(max(guess, earliest), latest)


#: Wiro's MCP client's wait: every 2 s for the first 15 s, every 5 s until 60 s, then every
#: 10 s. Used while a model's duration is unknown; the budget to beat once it is known.
def mcp_interval(elapsed: float) -> float:
    return 2.0 if elapsed < 15 else 5.0 if elapsed < 60 else 10.0


@dataclass(frozen=True, slots=True)
class PollSchedule:
    #: Never two Task/Detail calls for one task closer than this.
    min_interval: float = 1.0
    #: The sparsest interval once a task runs later than predicted.
    max_interval: float = 10.0
    #: While a model's duration is unknown, all its jobs together poll about this often per
    #: second: one of them notices the first finish soon, and that teaches the duration.
    discovery_rate: float = 10.0

    def next_delay(
        self,
        elapsed: float,
        expected: float | None,
        rng: random.Random,
        *,
        first: bool = False,
        crowd: int = 1,
        spread: tuple[float, float] = (0.85, 1.2),
    ) -> float:
        """Seconds until the next Task/Detail, `elapsed` seconds after submission, for a
        job predicted to take `expected` seconds, with `crowd` jobs of the same model being
        watched. `spread` is where jobs end, as multiples of their prediction."""
        lo, hi = self.min_interval, self.max_interval
        if expected is None:
            # Wiro's MCP pace, slower for a crowd; random phases spread the polls of many jobs.
            pace = max(mcp_interval(elapsed), crowd / self.discovery_rate)
            pace = max(min(pace, hi), lo)
            return pace * (rng.uniform(0.3, 1.0) if first else rng.uniform(1.0, 1.1))
        dense_from, dense_until = expected * spread[0], expected * spread[1]
        until_dense = dense_from - elapsed
        if until_dense > lo:
            # Before the window where jobs end: one look a third of the way in (to report
            # queued -> running) when the wait is long, then straight to the window.
            if until_dense > 10.0 and elapsed < expected / 4:
                return max(lo, min(expected / 3 - elapsed, until_dense / 2))
            return until_dense
        if elapsed < dense_until:
            # Once a second through the window: the end is noticed half a second late on
            # average; the jitter (never below the floor) keeps jobs out of lockstep.
            return lo * rng.uniform(1.0, 1.15)
        overdue = elapsed - dense_until
        return min(hi, max(lo, 0.25 * overdue)) * rng.uniform(1.0, 1.1)


class PollingWatcher:
    """Follows a task with Task/Detail on the schedule above, within the shared rate cap."""

    def __init__(
        self,
        client: WiroClient,
        estimates: DurationEstimates,
        schedule: PollSchedule,
        *,
        rate_limit: DetailRateLimit | None = None,
        rng: random.Random | None = None,
        max_consecutive_errors: int = 8,
    ) -> None:
        self._client = client
        self._estimates = estimates
        self._schedule = schedule
        self._limit = rate_limit
        self._rng = rng or random.Random()
        self._max_errors = max_consecutive_errors

    @property
    def estimates(self) -> DurationEstimates:
        return self._estimates

    async def watch(
        self,
        job: Job,
        on_update: OnUpdate,
        on_change: OnChange | None = None,
        *,
        look_now: bool = False,
    ) -> Task:
        """`look_now`: the first Task/Detail at once (the task may have ended already, e.g.
        while a socket that was following it failed). Each look is one Task: `on_update`
        is told all, `on_change` is not used."""
        assert job.task_id is not None
        submitted = job.submitted_at or time.time()
        self._estimates.crowd[job.model] += 1
        try:
            return await self._watch(job, on_update, submitted, look_now)
        finally:
            self._estimates.crowd[job.model] -= 1

    async def detail(self, job: Job, *, capped: bool = True) -> Task:
        """One Task/Detail, within the shared rate cap unless `capped` is False."""
        assert job.task_id is not None
        if capped and self._limit is not None:
            await self._limit.acquire()
        return await self._client.task_detail(task_id=job.task_id)

    def predict(self, job: Job) -> float | None:
        return self._estimates.predict(job.model, job_work(job.inputs))

    def learn(self, job: Job, seconds: float, predicted: float | None) -> None:
        self._estimates.record(job.model, seconds, job_work(job.inputs), predicted=predicted)

    async def _watch(self, job: Job, on_update: OnUpdate, submitted: float, look_now: bool) -> Task:
        estimates = self._estimates
        last_seen: tuple[TaskStatus, TaskProgress | None] | None = None
        errors = 0
        first = True
        previous_poll = submitted
        last_poll = float("-inf")
        floor = self._schedule.min_interval
        while True:
            expected = self.predict(job)
            if look_now:
                delay, look_now = 0.0, False
            else:
                delay = self._schedule.next_delay(
                    time.time() - submitted,
                    expected,
                    self._rng,
                    first=first,
                    crowd=estimates.crowd[job.model],
                    spread=estimates.spread(job.model),
                )
            first = False
            # Never two polls of one task within the floor, whatever the plan says.
            delay = max(delay, last_poll + floor - time.monotonic())
            if not await estimates.sleep(job.model, delay):
                # Woken early by a new estimate: re-plan, spread out so that the jobs of a
                # crowded model do not all poll in the same instant.
                await asyncio.sleep(self._rng.uniform(0, floor * 2))
                continue
            last_poll = time.monotonic()
            try:
                task = await self.detail(job)
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
                    self.learn(job, _duration(task, submitted, previous_poll), expected)
                return task
            previous_poll = time.time()
