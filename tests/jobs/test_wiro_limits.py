"""Polite at Wiro's limits: code 96 (full), code 97 (balance) and HTTP 429 (slow down).

Nothing here fails a job: the job waits, says why, and goes when Wiro lets it.
"""

from __future__ import annotations

import asyncio

from bot.jobs.engine import JobEngine
from bot.jobs.events import EventKind, Subscription
from bot.jobs.gate import Backoff, WiroGate
from bot.jobs.job import Job, JobState
from tests.jobs.conftest import ALICE, BOB, EngineFactory, finished, reaches, request
from tests.wiro_standin import WiroStandIn

CAROL = type(ALICE)(user_id=3, guild_id=100, channel_id=1000)
DAVE = type(ALICE)(user_id=4, guild_id=100, channel_id=1000)


async def all_finished(events: Subscription, job_ids: set[int], within: float = 10.0) -> list[Job]:
    """Each of these jobs as it finished, in whatever order they finish."""
    ends: list[Job] = []
    async with asyncio.timeout(within):
        while len(ends) < len(job_ids):
            event = await events.get()
            if event.kind is EventKind.FINISHED and event.job.id in job_ids:
                ends.append(event.job)
    return ends


async def settle(engine: JobEngine, seconds: float = 0.2) -> None:
    """Give the engine time to do what it would do (it should do nothing more)."""
    await asyncio.sleep(seconds)


async def test_a_wiro_that_stays_full_gets_one_run_per_back_off_not_a_stream(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    engine.gate.full_backoff = Backoff(0.1, 0.4)
    wiro.fail_always("run", "code96")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await asyncio.sleep(1.5)
        # Runs at about 0, 0.1, 0.3, 0.7, 1.1 and 1.5 s: the back-off doubles to its cap.
        assert 2 <= wiro.calls["run"] <= 7
        waiting = await engine.get(job.id)
        assert waiting is not None and waiting.status is JobState.WAITING
        assert waiting.waiting_for == "Wiro is busy with other work of this project"
        assert waiting.error is None

        wiro.stop_failing("run")
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED
    assert len(wiro.tasks) == 1


async def test_the_limit_learned_from_a_96_holds_until_one_of_our_tasks_ends(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    engine.gate.full_backoff = Backoff(30.0, 30.0)  # no probe during this test
    wiro.concurrency_limit = 2
    wiro.hold()
    with engine.subscribe() as events:
        first = await engine.submit(request("one"))
        await reaches(events, first.id, JobState.QUEUED)
        second = await engine.submit(request("two", who=BOB))
        await reaches(events, second.id, JobState.QUEUED)
        third = await engine.submit(request("three", who=CAROL))
        await reaches(events, third.id, JobState.SUBMITTED)
        await reaches(events, third.id, JobState.WAITING)
        fourth = await engine.submit(request("four", who=DAVE))
        await settle(engine)
        # Wiro took two: that is its limit now. Nothing more is sent while both run.
        assert wiro.calls["run"] == 3
        for job in (third, fourth):
            shown = await engine.get(job.id)
            assert shown is not None
            assert shown.waiting_for == "Wiro is busy with this project's 2 other jobs"

        # One of ours ends: exactly one Run goes.
        wiro.finish(wiro.runs[0].task_id or "")
        await finished(events, first.id)
        await settle(engine)
        assert wiro.calls["run"] == 4
        assert len([job for job in (third, fourth) if engine.queue_position(job.id)]) == 1

        wiro.release()
        ends = await all_finished(events, {second.id, third.id, fourth.id})
    assert {job.status for job in ends} == {JobState.SUCCEEDED}
    assert sorted(run.body["prompt"] for run in wiro.runs if run.task_id) == [
        "four",
        "one",
        "three",
        "two",
    ]


async def test_a_low_balance_pauses_every_submission_and_a_probe_resumes_them(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    engine.gate.balance_backoff = Backoff(0.1, 0.2)
    wiro.fail_always("run", "code97")
    with engine.subscribe() as events:
        jobs = [
            await engine.submit(request(f"job {n}", who=who))
            for n, who in enumerate((ALICE, BOB, CAROL))
        ]
        paused = None
        async with asyncio.timeout(5):
            async for event in events:
                if event.kind is EventKind.SUBMISSIONS_PAUSED:
                    paused = event
                    break
        assert paused is not None and paused.detail == engine.submissions_paused
        await asyncio.sleep(0.6)
        # One probe per back-off, not one per job: at 0 (up to three at once, before the
        # first answer), then about every 0.2 s.
        assert wiro.calls["run"] <= 3 + 4
        for job in jobs:
            shown = await engine.get(job.id)
            assert shown is not None and shown.status is JobState.WAITING
            assert shown.waiting_for is not None
            assert shown.waiting_for.startswith("Wiro's balance for this project is too low")

        wiro.stop_failing("run")
        resumed = None
        async with asyncio.timeout(5):
            async for event in events:
                if event.kind is EventKind.SUBMISSIONS_RESUMED:
                    resumed = event
                    break
        assert resumed is not None
        ends = await all_finished(events, {job.id for job in jobs})
    assert {job.status for job in ends} == {JobState.SUCCEEDED}
    assert engine.submissions_paused is None
    assert len(wiro.tasks) == 3


async def test_a_sustained_429_slows_the_engine_and_fails_no_job(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    engine = await make_engine()
    wiro.fail_always("run", "http429", retry_after=0.05)
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await asyncio.sleep(0.6)
        shown = await engine.get(job.id)
        # Waiting, or being sent again (the client itself waits out a short Retry-After).
        assert shown is not None and shown.status in (JobState.WAITING, JobState.SUBMITTED)
        assert shown.error is None
        # Retry-After is honoured: no more than one Run per 0.05 s.
        assert wiro.calls["run"] <= 0.6 / 0.05 + 1
        wiro.stop_failing("run")
        wiro.fail_always("detail", "http429", retry_after=0.05)
        await reaches(events, job.id, JobState.QUEUED)
        await asyncio.sleep(0.4)
        wiro.stop_failing("detail")
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED


# -- the gate on its own, on a clock of its own ------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_after_a_96_the_gate_opens_when_a_task_ends_or_the_back_off_passes() -> None:
    clock = Clock()
    gate = WiroGate(full=Backoff(1.0, 30.0), clock=clock)
    assert gate.may_run(3)
    gate.full(3)
    assert not gate.may_run(3)
    assert gate.may_run(2)  # one of ours ended: a slot below the ceiling
    assert gate.next_look() == 1.0
    clock.now = 1.0
    assert gate.may_run(3)  # the back-off passed: one probe
    probe = gate.sending(3)
    assert probe and not gate.may_run(3)  # only one probe at a time
    gate.full(3)
    assert gate.next_look() == 2.0  # doubled
    for _ in range(10):
        gate.full(3)
    assert gate.next_look() == 30.0  # capped
    clock.now = 100.0
    probe = gate.sending(3)
    gate.accepted(probe)  # a Run beyond the ceiling succeeded: the ceiling lifts
    assert gate.ceiling is None and gate.may_run(10)


def test_a_balance_pause_lets_one_probe_through_per_back_off() -> None:
    clock = Clock()
    gate = WiroGate(balance=Backoff(1.0, 300.0), clock=clock)
    assert gate.out_of_balance("too low")
    assert not gate.out_of_balance("too low")  # already paused: no second alert
    assert not gate.may_run(0) and gate.reason(0) == "too low"
    clock.now = 2.0
    assert gate.may_run(0)
    probe = gate.sending(0)
    assert not gate.may_run(0)
    assert gate.accepted(probe)  # the pause ended
    assert gate.paused is None and gate.may_run(0)
