"""What happens to a job, from the request to the stored result."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from PIL import Image

from bot.catalog.validation import InvalidInput
from bot.jobs.engine import CancelOutcome, JobEngine, LimitReached
from bot.jobs.events import EventKind
from bot.jobs.job import ErrorKind, JobState
from bot.store import GuildSettings, Store
from bot.wiro.types import TaskStatus
from tests.jobs.conftest import ALICE, BOB, MODEL, EngineFactory, finished, reaches, request
from tests.wiro_standin import WiroStandIn


async def test_a_job_succeeds_and_its_images_inputs_cost_and_time_are_stored(
    engine: JobEngine, wiro: WiroStandIn, store: Store
) -> None:
    with engine.subscribe() as events:
        job = await engine.submit(request("a red fox", samples=2, seed=42))
        done = await finished(events, job.id)

    assert done.status is JobState.SUCCEEDED
    stored = await store.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobState.SUCCEEDED
    assert stored.inputs["prompt"] == "a red fox"
    assert stored.inputs["seed"] == 42 and stored.seed == 42
    assert stored.cost is not None and stored.cost > 0
    assert stored.elapsed_seconds is not None and stored.elapsed_seconds > 0
    assert stored.task_id is not None and stored.finished_at is not None
    assert len(stored.outputs) == 2
    for output in stored.outputs:
        assert output.path is not None
        with Image.open(output.path) as image:
            assert (image.width, image.height) == (output.width, output.height)
        assert output.content_type == "image/png"


async def test_the_run_carries_the_users_prompt_and_the_seed_pages_wire_types(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    with engine.subscribe() as events:
        job = await engine.submit(request("a quiet harbour", guidance=5, steps=12))
        await finished(events, job.id)

    body = wiro.runs[0].body
    assert wiro.runs[0].slug == MODEL
    assert body["prompt"] == "a quiet harbour"
    assert body["scale"] == "5" and body["steps"] == 12
    assert body["seed"] == str(job.seed)
    assert body["samples"] == 1 and body["width"] == 1024


async def test_the_seed_is_random_when_absent_and_always_recorded(engine: JobEngine) -> None:
    first = await engine.submit(request())
    second = await engine.submit(request())
    assert 0 <= first.seed <= 4294967295
    assert first.seed != second.seed
    assert first.inputs["seed"] == first.seed


async def test_bad_input_never_reaches_wiro_and_stores_nothing(
    engine: JobEngine, wiro: WiroStandIn, store: Store
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await engine.submit(request(steps=500))
    assert caught.value.option == "steps"
    with pytest.raises(InvalidInput) as caught:
        await engine.submit(request(scheduler="DDIMScheduler"))
    assert caught.value.option == "scheduler"
    with pytest.raises(InvalidInput) as caught:
        await engine.submit(request(model="nobody/nothing"))
    assert caught.value.option == "model"
    assert wiro.calls["run"] == 0
    assert await store.jobs.history(store_query()) == []


def store_query():  # type: ignore[no-untyped-def]
    from bot.store import HistoryQuery

    return HistoryQuery(limit=50)


async def test_server_defaults_apply_below_the_users_options(
    engine: JobEngine, store: Store, wiro: WiroStandIn
) -> None:
    await store.guilds.set_model_default(100, MODEL, "steps", 11)
    await store.guilds.set_model_default(100, MODEL, "guidance", 6.5)
    job = await engine.submit(request(guidance=2))
    assert job.inputs["steps"] == 11
    assert job.inputs["guidance"] == 2


async def test_a_disabled_model_and_server_caps_are_refused(
    engine: JobEngine, store: Store
) -> None:
    await store.guilds.save(
        GuildSettings(guild_id=100, disabled_models=frozenset({MODEL.lower()}), max_samples=2)
    )
    with pytest.raises(InvalidInput, match="turned off"):
        await engine.submit(request())
    with pytest.raises(InvalidInput) as caught:
        await engine.submit(request(model="wavymulder/portraitplus", samples=4))
    assert caught.value.option == "samples"


async def test_the_daily_limit_says_when_to_retry(engine: JobEngine, store: Store) -> None:
    await store.guilds.save(GuildSettings(guild_id=100, max_jobs_per_user_per_day=2))
    first = await engine.submit(request())
    await engine.submit(request())
    with pytest.raises(LimitReached) as caught:
        await engine.submit(request())
    assert caught.value.retry_at == pytest.approx(first.created_at + 86_400)
    await engine.submit(request(who=BOB))  # another member is not affected


@pytest.mark.parametrize(
    ("outcome", "kind", "words"),
    [
        ("failed", ErrorKind.TASK_FAILED, "CUDA out of memory"),
        ("task_error", ErrorKind.TASK_FAILED, ""),
        ("cdn404", ErrorKind.DOWNLOAD, "could not be downloaded"),
    ],
)
async def test_a_failed_task_is_stored_with_wiros_reason(
    engine: JobEngine, wiro: WiroStandIn, store: Store, outcome: str, kind: ErrorKind, words: str
) -> None:
    wiro.next_outcome(outcome)
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED
    assert done.error_kind is kind
    assert words in (done.error or "")
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.status is JobState.FAILED and stored.error


async def test_images_the_bot_cannot_save_fail_the_job_and_keep_its_cost(
    make_engine: EngineFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine()
    outputs = tmp_path / "outputs"
    for leftover in outputs.iterdir():
        leftover.unlink()
    outputs.rmdir()
    outputs.write_text("a file where the images' folder was")  # root ignores permissions
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED and done.error_kind is ErrorKind.DOWNLOAD
    assert done.error == "The images were made but the bot could not save them (Not a directory)."
    assert done.cost is not None and done.cost > 0  # Wiro made them: it is billed
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # one logged reason
    assert f"job {job.id}: could not save its images" in errors[0]
    assert "Not a directory" in errors[0]


async def test_a_failed_task_costs_nothing(engine: JobEngine, wiro: WiroStandIn) -> None:
    wiro.next_outcome("failed")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.cost == 0


async def test_a_refused_key_fails_the_job_without_a_second_run(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.fail_next("run", "http401")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED
    assert done.error_kind is ErrorKind.AUTH
    assert done.error is not None and "API secret does not match" in done.error
    assert wiro.calls["run"] == 1


async def test_wiro_trouble_while_watching_is_retried(engine: JobEngine, wiro: WiroStandIn) -> None:
    wiro.fail_next("detail", "http502", times=2)
    wiro.fail_next("detail", "garbage")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED


async def test_the_concurrency_limit_makes_jobs_wait_not_fail(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    wiro.concurrency_limit = 1
    wiro.hold()
    engine = await make_engine()
    with engine.subscribe() as events:
        first = await engine.submit(request())
        await reaches(events, first.id, JobState.QUEUED)
        second = await engine.submit(request(who=BOB))
        await reaches(events, second.id, JobState.SUBMITTED)
        waiting = await reaches(events, second.id, JobState.WAITING)
        assert waiting.error is None
        assert engine.queue_position(second.id) == 1
        wiro.finish(wiro.runs[0].task_id)
        assert (await finished(events, first.id)).status is JobState.SUCCEEDED
        wiro.release()
        assert (await finished(events, second.id)).status is JobState.SUCCEEDED
    assert len(wiro.tasks) == 2


async def test_local_waiting_is_fair_across_members(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    wiro.hold()
    engine = await make_engine(max_concurrent=1)
    with engine.subscribe() as events:
        alice = [await engine.submit(request(f"alice {n}")) for n in range(3)]
        bob = await engine.submit(request("bob", who=BOB))
        assert engine.queue_position(bob.id) == 1
        assert engine.queue_position(alice[1].id) == 2
        order = []
        for _ in range(4):
            while len(wiro.runs) == len(order):
                await events.get()
            run = wiro.runs[len(order)]
            order.append(run.body["prompt"])
            wiro.finish(run.task_id)
    assert order == ["alice 0", "bob", "alice 1", "alice 2"]


async def test_per_member_limit_queues_the_extra_jobs(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    wiro.hold()
    engine = await make_engine(max_concurrent_per_user=1)
    with engine.subscribe() as events:
        first = await engine.submit(request())
        await reaches(events, first.id, JobState.QUEUED)
        second = await engine.submit(request())
        other = await engine.submit(request(who=BOB))
        await reaches(events, other.id, JobState.QUEUED)
    assert (await engine.get(second.id)).status is JobState.WAITING  # type: ignore[union-attr]


async def test_cancel_a_waiting_job_makes_no_wiro_call(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    wiro.hold()
    engine = await make_engine(max_concurrent=1)
    with engine.subscribe() as events:
        first = await engine.submit(request())
        await reaches(events, first.id, JobState.QUEUED)
        second = await engine.submit(request())
        result = await engine.cancel(second.id)
    assert result.outcome is CancelOutcome.DROPPED
    assert wiro.calls["run"] == 1 and wiro.calls["cancel"] == 0 and wiro.calls["kill"] == 0
    stored = await store.jobs.get(second.id)
    assert stored is not None and stored.status is JobState.CANCELLED


async def test_cancel_a_job_queued_at_wiro_uses_task_cancel(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.hold()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
        result = await engine.cancel(job.id)
    assert result.outcome is CancelOutcome.CANCELLED
    assert result.job is not None and result.job.status is JobState.CANCELLED
    assert wiro.calls["cancel"] == 1 and wiro.calls["kill"] == 0
    assert wiro.tasks[wiro.runs[0].task_id].status is TaskStatus.CANCEL


async def test_cancel_a_running_job_uses_task_kill(engine: JobEngine, wiro: WiroStandIn) -> None:
    wiro.hold()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
        wiro.advance(wiro.runs[0].task_id, TaskStatus.START)
        await reaches(events, job.id, JobState.RUNNING)
        result = await engine.cancel(job.id)
    assert result.outcome is CancelOutcome.KILLED
    assert wiro.calls["kill"] == 1 and wiro.calls["cancel"] == 0


async def test_cancel_after_the_end_or_twice_says_so(engine: JobEngine, wiro: WiroStandIn) -> None:
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await finished(events, job.id)
    result = await engine.cancel(job.id)
    assert result.outcome is CancelOutcome.ALREADY_FINISHED
    assert result.job is not None and result.job.status is JobState.SUCCEEDED
    assert (await engine.cancel(999_999)).outcome is CancelOutcome.NOT_FOUND
    assert wiro.calls["cancel"] == 0 and wiro.calls["kill"] == 0


async def test_a_stuck_task_is_killed_at_the_deadline(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    wiro.next_outcome("stuck")
    engine = await make_engine(deadline_seconds=0.3)
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.TIMED_OUT
    assert done.error_kind is ErrorKind.DEADLINE
    assert wiro.calls["kill"] == 1


async def test_a_new_engine_finishes_a_job_the_old_one_left_running(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    wiro.hold()
    old = await make_engine()
    with old.subscribe() as events:
        job = await old.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
    await old.close()

    new = await make_engine()
    with new.subscribe() as events:
        wiro.finish(wiro.runs[0].task_id)
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED
    assert wiro.calls["run"] == 1
    stored = await store.jobs.get(job.id)
    assert stored is not None and len(stored.outputs) == 1


async def test_a_new_engine_submits_jobs_that_never_reached_wiro_exactly_once(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    wiro.hold()
    old = await make_engine(max_concurrent=1)
    with old.subscribe() as events:
        first = await old.submit(request("first"))
        await reaches(events, first.id, JobState.QUEUED)
        waiting = await old.submit(request("second"))
    await old.close()
    assert wiro.calls["run"] == 1

    wiro.release()
    new = await make_engine()
    with new.subscribe() as events:
        outcomes = {first.id: None, waiting.id: None}
        for job_id in outcomes:
            done = await new.get(job_id)
            assert done is not None
            if not done.status.is_final:
                done = await finished(events, job_id)
            outcomes[job_id] = done.status
    assert set(outcomes.values()) == {JobState.SUCCEEDED}
    assert [run.body["prompt"] for run in wiro.runs] == ["first", "second"]


async def test_a_job_interrupted_while_sending_is_not_sent_again(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    from bot.store import NewJob

    job = await store.jobs.create(
        NewJob(MODEL, "p", {"prompt": "p", "seed": 1}, 1, ALICE, 0.0, JobState.SUBMITTED)
    )
    engine = await make_engine()
    with engine.subscribe([job.id]) as events:
        stored = await engine.get(job.id)
        assert stored is not None
        if not stored.status.is_final:
            stored = await finished(events, job.id)
    assert stored.status is JobState.FAILED
    assert stored.error_kind is ErrorKind.LOST
    # Wiro shows no task for it: said so, and nothing was sent again.
    assert stored.error is not None and "Wiro shows no task for it" in stored.error
    assert wiro.calls["run"] == 0


async def test_events_tell_each_state_in_order(engine: JobEngine, wiro: WiroStandIn) -> None:
    wiro.hold()
    seen: list[JobState] = []
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
        wiro.advance(wiro.runs[0].task_id, TaskStatus.START)
        await reaches(events, job.id, JobState.RUNNING)
        wiro.finish(wiro.runs[0].task_id)
        await finished(events, job.id)
    with engine.subscribe([job.id]) as only_this:
        assert only_this.job_ids == {job.id}
    del seen


async def test_no_secret_reaches_the_logs_or_job_errors(
    engine: JobEngine, wiro: WiroStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wiro.fail_next("run", "http401")
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    text = caplog.text + (done.error or "")
    assert wiro.api_key not in text
    assert wiro.api_secret is not None and wiro.api_secret not in text


async def test_outputs_land_in_the_outputs_folder(
    engine: JobEngine, wiro: WiroStandIn, tmp_path: Path
) -> None:
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.outputs[0].path is not None
    path = Path(done.outputs[0].path)
    assert path.parent == tmp_path / "outputs"
    assert path.name == f"{job.id}-{job.model.split('/')[1]}-seed{done.seed}-1.png"


async def test_closing_keeps_running_jobs_in_the_database(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    wiro.hold()
    engine = await make_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
    await engine.close()
    await asyncio.sleep(0)
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.status is JobState.QUEUED


async def test_progress_from_wiros_output_is_announced(
    engine: JobEngine, wiro: WiroStandIn
) -> None:
    wiro.hold()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
        task_id = wiro.runs[0].task_id
        assert task_id is not None
        wiro.advance(task_id, TaskStatus.OUTPUT)
        wiro.report_progress(task_id, 45)
        async with asyncio.timeout(10):
            while True:
                event = await events.get()
                if event.kind is EventKind.PROGRESS:
                    break
    assert event.progress is not None and event.progress.fraction == 0.45
    current = await engine.get(job.id)
    assert current is not None and current.progress == event.progress


async def test_a_job_that_ended_at_wiro_while_the_bot_was_down_past_its_deadline_succeeds(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    wiro.hold()
    old = await make_engine(deadline_seconds=0.5)
    with old.subscribe() as events:
        job = await old.submit(request())
        await reaches(events, job.id, JobState.QUEUED)
    await old.close()
    task_id = wiro.runs[0].task_id
    assert task_id is not None
    wiro.finish(task_id)
    await store.jobs.update(job.id, submitted_at=0.0)  # long past its deadline

    new = await make_engine(deadline_seconds=0.5)
    with new.subscribe() as events:
        current = await new.get(job.id)
        assert current is not None
        done = current if current.status.is_final else await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED
    assert wiro.calls["kill"] == 0


async def test_a_servers_per_member_limit_applies_and_lifts(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    wiro.hold()
    engine = await make_engine(max_concurrent_per_user=5)
    await store.guilds.save(GuildSettings(guild_id=100, max_concurrent_per_user=1))
    with engine.subscribe() as events:
        first = await engine.submit(request())
        await reaches(events, first.id, JobState.QUEUED)
        second = await engine.submit(request())
        assert engine.queue_position(second.id) == 1

        await store.guilds.save(GuildSettings(guild_id=100, max_concurrent_per_user=None))
        third = await engine.submit(request())
        queued: set[int] = set()
        async with asyncio.timeout(10):
            while queued != {second.id, third.id}:
                event = await events.get()
                if event.job.status is JobState.QUEUED:
                    queued.add(event.job.id)


async def test_a_finished_job_keeps_no_socket_token(engine: JobEngine, store: Store) -> None:
    """The token opens Wiro's socket for the task: a secret, needed only while it runs."""
    with engine.subscribe() as events:
        job = await engine.submit(request())
        done = await finished(events, job.id)
    assert done.status is JobState.SUCCEEDED and done.task_id
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.task_id == done.task_id
    assert stored.task_token is None and stored.wiro_status is None
