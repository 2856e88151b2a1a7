"""How often the engine asks Wiro about a task, and what it learns from the answers."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from bot.jobs.watch import DurationEstimates, PollSchedule, _duration
from bot.wiro.types import Task, TaskStatus

SCHEDULE = PollSchedule(min_interval=0.4, max_interval=10.0)


def polls_until(finish: float, expected: float | None, crowd: int = 1) -> list[float]:
    """The times a job polls until it sees a task that ends at `finish` seconds."""
    rng = random.Random(3)
    elapsed, times = 0.0, []
    while True:
        elapsed += SCHEDULE.next_delay(elapsed, expected, rng, first=not times, crowd=crowd)
        times.append(elapsed)
        if elapsed >= finish:
            return times


def test_a_job_of_a_known_model_polls_a_few_times_and_notices_the_end_quickly() -> None:
    for finish in (9.0, 10.0, 11.0):
        times = polls_until(finish, expected=10.0)
        assert len(times) <= 8
        assert times[-1] - finish < 0.6


def test_a_job_that_overruns_backs_off_to_the_sparsest_interval() -> None:
    times = polls_until(300.0, expected=10.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 10.0 * 1.1
    assert len(times) < 60


def test_a_crowd_of_jobs_of_an_unknown_model_shares_one_poll_budget() -> None:
    alone = polls_until(60.0, expected=None, crowd=1)
    crowded = polls_until(60.0, expected=None, crowd=1000)
    assert len(crowded) < len(alone)
    assert all(b - a <= 5.0 * 1.1 for a, b in itertools.pairwise(crowded))


def test_the_learned_duration_follows_wiros_end_time_within_the_polls() -> None:
    submitted = time.time() - 12.0
    task = Task.model_validate(
        {
            "id": "1",
            "status": "task_postprocess_end",
            "pexit": "0",
            "postprocessendtime": str(int(submitted + 10.0)),
        }
    )
    learned = _duration(task, submitted, previous_poll=submitted + 8.0)
    assert 9.4 <= learned <= 10.6
    unknown_end = Task.model_validate({"id": "1", "status": "task_postprocess_end"})
    assert _duration(unknown_end, submitted, previous_poll=submitted + 8.0) == pytest_approx(10.0)


def pytest_approx(value: float) -> object:
    import pytest

    return pytest.approx(value, abs=0.1)


async def test_a_new_estimate_wakes_sleeping_watchers_to_replan() -> None:
    estimates = DurationEstimates()
    sleeper = asyncio.create_task(estimates.sleep("m", 60.0))
    await asyncio.sleep(0)
    estimates.record("m", 10.0)
    async with asyncio.timeout(1):
        slept_fully = await sleeper
    assert slept_fully is False
    assert estimates.get("m") == 10.0
    assert TaskStatus.POSTPROCESS_END.value == "task_postprocess_end"
