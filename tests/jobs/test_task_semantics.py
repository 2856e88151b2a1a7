"""Tasks as Wiro means them: task_error and "There is no task yet." are not failures by
themselves, Cancel and Kill are checked and their cost recorded, and a Run whose answer was
lost is found and adopted (or said plainly to be unknowable), never sent again."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from bot.catalog.catalog import Catalog
from bot.catalog.validation import to_wire
from bot.jobs.engine import CancelOutcome, JobEngine
from bot.jobs.job import ErrorKind, JobState
from bot.jobs.wording import duration_words
from bot.store import NewJob, Store
from bot.wiro import WiroClient
from bot.wiro.types import Task, TaskStatus
from tests.jobs.conftest import ALICE, MODEL, EngineFactory, finished, reaches, request
from tests.wiro_standin import TASK_ERROR_MESSAGE, WiroStandIn

# -- task_error --------------------------------------------------------------------------------


async def test_a_passing_task_error_does_not_fail_the_job(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.run_seconds = 0.4  # long enough for the polls to see task_error on the way
    wiro.next_outcome("task_error_then_success")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED
    assert wiro.calls["kill"] == 0


async def test_a_task_error_that_persists_fails_the_job_once_the_task_is_stopped(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    engine = await make_engine(task_error_grace_seconds=0.3)
    wiro.next_outcome("task_error_hanging")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED
    assert done.error_kind is ErrorKind.TASK_FAILED
    assert done.error is not None and TASK_ERROR_MESSAGE in done.error
    # Not left running (and billing) at Wiro.
    task = wiro.tasks[done.task_id or ""]
    assert task.stopped_by == "kill" and task.status is TaskStatus.CANCEL


async def test_a_task_error_with_an_end_fails_the_job_and_nothing_keeps_running(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.next_outcome("task_error")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED
    assert done.error_kind is ErrorKind.TASK_FAILED
    assert done.cost == 0
    # Kill was asked (Wiro says it cannot: the task has ended) and the end was checked.
    assert wiro.calls["kill"] == 1
    assert wiro.tasks[done.task_id or ""].is_terminal


async def test_there_is_no_task_yet_is_retried_not_a_failure(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.hide_new_tasks = 3
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED
    assert wiro.detail_calls[done.task_id or ""] > 3


# -- Cancel and Kill ---------------------------------------------------------------------------


async def test_cancel_records_the_cost_wiro_answers_with(
    engine: JobEngine, wiro: WiroStandIn, store: Store
) -> None:
    wiro.stop_cost = 0.0021
    wiro.hold()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
        wiro.advance(wiro.runs[0].task_id or "", TaskStatus.START)
        await reaches(events, job.id, JobState.RUNNING)
        result = await engine.cancel(job.id)
    assert result.outcome is CancelOutcome.KILLED
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.status is JobState.CANCELLED
    assert stored.cost == Decimal("0.0021")
    # Only a running task needs its socket token (a secret) and Wiro's finer status.
    assert stored.task_token is None and stored.wiro_status is None


async def test_a_cancel_whose_answer_was_lost_is_checked_not_reported_failed(
    engine: JobEngine, wiro: WiroStandIn, store: Store
) -> None:
    wiro.hold()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
        wiro.fail_next("cancel", "drop")  # Wiro cancels it, and the answer is lost
        result = await engine.cancel(job.id)
    assert result.outcome is CancelOutcome.CANCELLED
    assert result.job is not None and result.job.status is JobState.CANCELLED
    assert wiro.tasks[wiro.runs[0].task_id or ""].stopped_by == "cancel"
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.status is JobState.CANCELLED


async def test_a_cancel_wiro_does_not_take_leaves_the_job_going(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.hold()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
        wiro.fail_next("cancel", "http500", times=10)
        wiro.fail_next("kill", "http500", times=10)
        wiro.fail_next("detail", "http500", times=10)
        result = await engine.cancel(job.id)
        assert result.outcome is CancelOutcome.FAILED
        assert result.job is not None and not result.job.status.is_final
        wiro.release()
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED


# -- lost Run answers --------------------------------------------------------------------------


async def test_a_run_whose_answer_was_lost_is_adopted_not_sent_again(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.fail_next("run", "drop")  # Wiro creates the task, the answer is lost
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED
    assert wiro.calls["run"] == 1 and len(wiro.tasks) == 1
    assert done.task_id == next(iter(wiro.tasks))
    assert wiro.calls["list"] >= 1


async def test_a_run_lost_before_wiro_saw_it_fails_plainly_and_costs_nothing(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.fail_next("run", "drop_unseen")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED
    assert done.error_kind is ErrorKind.LOST
    assert done.error == (
        "Wiro's answer to this job was lost on the way, and Wiro shows no task for it, "
        "so nothing was charged. Please try again."
    )
    assert wiro.tasks == {}


async def test_when_wiro_cannot_tell_the_job_says_so_and_is_not_sent_again(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.fail_next("run", "drop")
    wiro.fail_always("list", "http500")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED
    assert done.error_kind is ErrorKind.LOST
    assert done.error is not None
    assert "Wiro could not tell whether the job started" in done.error
    assert "Exception" not in done.error and "Error" not in done.error
    assert wiro.calls["run"] == 1


async def test_a_restart_between_run_and_storing_its_task_adopts_the_task(
    make_engine: EngineFactory, wiro: WiroStandIn, wiro_client: WiroClient, store: Store
) -> None:
    inputs = {
        "prompt": "a lost lantern",
        "seed": 77,
        "samples": 1,
        "steps": 28,
        "guidance": 3.5,
        "width": 1024,
        "height": 1024,
    }
    model = Catalog.from_seeds().require(MODEL)
    payload = to_wire(model, inputs)
    # The old process sent the Run and stopped before storing Wiro's answer.
    now = time.time()
    job = await store.jobs.create(
        NewJob(MODEL, "a lost lantern", inputs, 77, ALICE, now, JobState.SUBMITTED)
    )
    await store.jobs.update(job.id, submitted_at=now)
    sent = await wiro_client.run(MODEL, payload)
    # Another job's task with other inputs is not taken for it.
    await wiro_client.run(MODEL, {**payload, "seed": "78"})

    engine = await make_engine()
    with engine.subscribe([job.id]) as events:
        shown = await engine.get(job.id)
        done = shown if shown and shown.status.is_final else await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED
    assert done.task_id == sent.taskid
    assert len(wiro.tasks) == 2  # nothing sent again


# -- reading Wiro's answers ----------------------------------------------------------------------


def test_task_error_is_terminal_only_once_the_task_has_ended() -> None:
    passing = Task.model_validate({"id": "1", "status": "task_error", "endtime": "0"})
    assert not passing.is_terminal and not passing.failed
    ended = Task.model_validate({"id": "1", "status": "task_error", "endtime": "1700000000"})
    assert ended.is_terminal and ended.failed
    exited = Task.model_validate({"id": "1", "status": "task_error", "pexit": "1"})
    assert exited.is_terminal and exited.failed


def test_outputs_are_read_tolerantly() -> None:
    task = Task.model_validate(
        {
            "id": "1",
            "status": "task_postprocess_end",
            "pexit": "0",
            "output": [
                {"name": "0.png", "contenttype": "image/png", "size": "10", "url": "https://x/0"},
                {"name": "log.txt", "contenttype": "text/plain", "size": "3"},
            ],
            "parameters": '{"prompt": "a cat", "seed": "1"}',
        }
    )
    assert [output.url for output in task.outputs] == ["https://x/0"]
    assert task.parameters == {"prompt": "a cat", "seed": "1"}


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (3, "3 seconds"),
        (1, "1 second"),
        (0.3, "0.3 seconds"),
        (60, "60 seconds"),
        (600, "10 minutes"),
        (150, "2.5 minutes"),
        (7200, "2 hours"),
    ],
)
def test_durations_are_worded_as_a_person_would(seconds: float, words: str) -> None:
    assert duration_words(seconds) == words


async def test_a_short_deadline_is_worded_in_seconds(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    wiro.next_outcome("stuck")
    engine = await make_engine(deadline_seconds=0.3)
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.error == "Wiro did not finish within 0.3 seconds, so the job was stopped."


async def test_a_job_cancelled_while_its_lost_run_is_looked_for_ends_cancelled(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    now = time.time()
    job = await store.jobs.create(
        NewJob(MODEL, "p", {"prompt": "p", "seed": 1}, 1, ALICE, now, JobState.SUBMITTED)
    )
    await store.jobs.update(job.id, submitted_at=now, cancel_requested=True)
    engine = await make_engine()
    with engine.subscribe([job.id]) as events:
        shown = await engine.get(job.id)
        done = shown if shown and shown.status.is_final else await finished(events, job.id)
    assert done.status is JobState.CANCELLED
    assert wiro.calls["run"] == 0
