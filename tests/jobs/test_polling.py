"""How often the engine asks Wiro about a task, and what it learns from the answers."""

from __future__ import annotations

import asyncio
import itertools
import random
import time

from bot.jobs.watch import (
    DetailRateLimit,
    DurationEstimates,
    PollSchedule,
    _duration,
    job_work,
    mcp_interval,
)
from bot.wiro.types import Task, TaskStatus

SCHEDULE = PollSchedule(min_interval=1.0, max_interval=10.0)


def polls_until(
    finish: float,
    expected: float | None,
    crowd: int = 1,
    spread: tuple[float, float] = (0.85, 1.2),
    seed: int = 3,
) -> list[float]:
    """The times a job polls until it sees a task that ends at `finish` seconds."""
    rng = random.Random(seed)
    elapsed, times = 0.0, []
    while True:
        elapsed += SCHEDULE.next_delay(
            elapsed, expected, rng, first=not times, crowd=crowd, spread=spread
        )
        times.append(elapsed)
        if elapsed >= finish:
            return times


def mcp_polls_until(finish: float) -> int:
    """How many Task/Detail calls Wiro's MCP client makes for a task ending at `finish`."""
    elapsed, calls = 0.0, 0
    while elapsed < finish:
        elapsed += mcp_interval(elapsed)
        calls += 1
    return calls


def test_a_job_of_a_known_model_polls_a_few_times_and_notices_the_end_quickly() -> None:
    for finish in (9.0, 10.0, 11.0):
        times = polls_until(finish, expected=10.0)
        assert len(times) <= 5
        assert times[-1] - finish < 1.2


def test_no_task_is_polled_more_than_once_a_second() -> None:
    for expected in (None, 3.0, 10.0, 90.0):
        times = polls_until(120.0, expected=expected)
        assert all(b - a >= 1.0 for a, b in itertools.pairwise(times))


def test_at_every_task_length_a_job_polls_no_more_than_wiros_mcp_client() -> None:
    """Tasks of 3, 10, 30 and 90 s, +-10 %, once the model's spread is learned."""
    for length in (3.0, 10.0, 30.0, 90.0):
        ours, theirs, late = 0, 0, []
        for n in range(50):
            finish = length * (0.9 + 0.2 * n / 49)
            times = polls_until(finish, expected=length, spread=(0.88, 1.12), seed=n)
            ours += len(times)
            theirs += mcp_polls_until(finish)
            late.append(times[-1] - finish)
        assert ours <= theirs, length
        assert sorted(late)[25] < 1.0, length


def test_the_duration_of_a_job_is_predicted_from_its_own_inputs() -> None:
    estimates = DurationEstimates()
    rng = random.Random(5)
    for _ in range(20):
        inputs = {
            "steps": rng.choice([10, 30, 50]),
            "width": rng.choice([512, 1024]),
            "height": 1024,
            "samples": rng.choice([1, 2, 4]),
        }
        work = job_work(inputs)
        assert work is not None
        estimates.record("m", 2.0 + work * 1e-6, work)
    small = job_work({"steps": 10, "width": 512, "height": 512, "samples": 1})
    large = job_work({"steps": 50, "width": 1024, "height": 1024, "samples": 4})
    assert small is not None and large is not None
    assert estimates.predict("m", small) == pytest_approx(2.0 + small * 1e-6)
    assert estimates.predict("m", large) == pytest_approx(2.0 + large * 1e-6)
    assert job_work({"prompt": "no numbers"}) is None


def test_the_window_of_dense_polls_follows_how_far_jobs_strayed_from_predictions() -> None:
    estimates = DurationEstimates()
    assert estimates.spread("m") == (0.85, 1.2)
    for n in range(25):
        estimates.record("m", 10.0 * (0.95 + 0.1 * n / 24), predicted=10.0)
    low, high = estimates.spread("m")
    assert 0.94 <= low <= 0.97 and 1.03 <= high <= 1.06


async def test_the_detail_rate_limit_lets_a_burst_through_then_paces_calls() -> None:
    limit = DetailRateLimit(100)
    started = time.monotonic()
    for _ in range(100):
        await limit.acquire()
    assert time.monotonic() - started < 0.1
    for _ in range(30):
        await limit.acquire()
    assert time.monotonic() - started >= 0.25


def test_a_job_that_overruns_backs_off_to_the_sparsest_interval() -> None:
    times = polls_until(300.0, expected=10.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) <= 10.0 * 1.1
    assert len(times) < 60


def test_a_crowd_of_jobs_of_an_unknown_model_shares_one_poll_budget() -> None:
    alone = polls_until(60.0, expected=None, crowd=1)
    crowded = polls_until(60.0, expected=None, crowd=1000)
    assert len(crowded) < len(alone)
    assert all(b - a <= 10.0 * 1.1 for a, b in itertools.pairwise(crowded))


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
