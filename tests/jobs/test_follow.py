"""Jobs followed on Wiro's WebSocket: live progress, one Task/Detail, and polling whenever the
socket fails, with every job finishing exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.catalog.catalog import Catalog
from bot.jobs.engine import JobEngine
from bot.jobs.events import EventKind, Subscription
from bot.jobs.follow import SocketWatcher
from bot.jobs.job import Job, JobState
from bot.jobs.watch import DurationEstimates, PollingWatcher, PollSchedule
from bot.runtime import build_socket
from bot.settings import Settings
from bot.store import Store
from bot.wiro import WiroClient
from bot.wiro.socket import WiroSocket
from bot.wiro.types import TaskProgress, TaskStatus
from tests.jobs.conftest import MODEL, fast_settings, request
from tests.wiro_standin import WiroStandIn

SocketEngineFactory = Callable[..., Awaitable[tuple[JobEngine, WiroSocket]]]


@pytest.fixture
async def make_socket_engine(
    wiro: WiroStandIn, wiro_client: WiroClient, store: Store, tmp_path: Path
) -> AsyncIterator[SocketEngineFactory]:
    """Engines whose jobs are followed on the stand-in's socket; closed at the end."""
    made: list[tuple[JobEngine, WiroSocket]] = []

    async def make(backoff: float = 0.2, **settings: Any) -> tuple[JobEngine, WiroSocket]:
        socket = WiroSocket(
            wiro.socket_url, idle_timeout=0.3, backoff_base=backoff, rng=random.Random(1)
        )
        engine = JobEngine(
            client=wiro_client,
            store=store,
            catalog=Catalog.from_seeds(),
            settings=fast_settings(**settings),
            outputs_dir=tmp_path / "outputs",
            default_model=MODEL,
            socket=socket,
            rng=random.Random(7),
        )
        await engine.start()
        made.append((engine, socket))
        return engine, socket

    yield make
    for engine, socket in made:
        await engine.close()
        await socket.close()


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def run_to_the_end(
    events: Subscription, job_id: int, within: float = 10.0, settle: float = 0.3
) -> tuple[Job, list[EventKind], list[TaskProgress]]:
    """The finished job, every kind of event it had and the progress reported, after waiting
    `settle` seconds more to catch any second finish."""
    kinds: list[EventKind] = []
    progress: list[TaskProgress] = []
    final: Job | None = None
    async with asyncio.timeout(within):
        while final is None:
            event = await events.get()
            if event.job.id != job_id:
                continue
            kinds.append(event.kind)
            if event.kind is EventKind.PROGRESS and event.progress is not None:
                progress.append(event.progress)
            if event.kind is EventKind.FINISHED:
                final = event.job
    if settle:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(settle):
                while True:
                    event = await events.get()
                    if event.job.id == job_id:
                        kinds.append(event.kind)
    return final, kinds, progress


async def test_a_job_on_the_socket_shows_live_progress_and_costs_one_detail_call(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    wiro.run_seconds = 0.4
    engine, _ = await make_socket_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request(steps=20))
        final, kinds, progress = await run_to_the_end(events, job.id)

    assert final.status is JobState.SUCCEEDED
    assert len(final.outputs) == 1
    assert kinds.count(EventKind.FINISHED) == 1
    assert [p.fraction for p in progress] == [0.25, 0.5, 0.75, 1.0]
    assert progress[0] == TaskProgress(0.25, 5, 20, 9.0)
    assert final.task_id is not None
    assert wiro.socket.registrations[final.task_id] == 1
    assert wiro.detail_calls[final.task_id] == 1


async def test_a_stderr_line_on_the_socket_does_not_fail_the_job(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    # Every stand-in task writes a warning to stderr (a task_error message) while working.
    wiro.run_seconds = 0.2
    engine, _ = await make_socket_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        final, _, _ = await run_to_the_end(events, job.id)
    assert final.status is JobState.SUCCEEDED


async def test_a_task_that_fails_at_wiro_fails_the_job_with_its_reason(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    wiro.next_outcome("failed")
    engine, _ = await make_socket_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        final, kinds, _ = await run_to_the_end(events, job.id)
    assert final.status is JobState.FAILED
    assert "CUDA out of memory" in (final.error or "")
    assert kinds.count(EventKind.FINISHED) == 1


@pytest.mark.parametrize("fault", ["refuse", "drop", "stall", "garble"])
async def test_when_the_socket_fails_the_job_is_polled_and_finishes_exactly_once(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory, fault: str
) -> None:
    wiro.run_seconds = 0.5
    wiro.socket.fail_next(fault)
    engine, socket = await make_socket_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        final, kinds, _ = await run_to_the_end(events, job.id)

    assert final.status is JobState.SUCCEEDED
    assert kinds.count(EventKind.FINISHED) == 1
    assert len(wiro.runs) == 1
    assert final.task_id is not None
    assert wiro.detail_calls[final.task_id] >= 1  # it was polled
    assert (await engine.store.jobs.get(job.id)).status is JobState.SUCCEEDED  # type: ignore[union-attr]
    assert socket.retry_in >= 0  # and the socket backs off


async def test_a_socket_that_fails_as_the_task_ends_still_finishes_the_job_once(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    wiro.hold()
    engine, _ = await make_socket_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await asyncio.sleep(0.1)
        task_id = wiro.runs[0].task_id
        assert task_id is not None
        # Wiro ends the task and the connection goes silent at the same moment.
        wiro.socket.tick = 10.0
        wiro.finish(task_id)
        final, kinds, _ = await run_to_the_end(events, job.id)
    assert final.status is JobState.SUCCEEDED
    assert kinds.count(EventKind.FINISHED) == 1


async def test_while_the_socket_backs_off_jobs_poll_and_afterwards_use_it_again(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    wiro.hold()
    wiro.socket.fail_next("refuse")
    engine, socket = await make_socket_engine(backoff=1.5)  # 1.2 to 1.8 s

    async def one_job() -> str:
        with engine.subscribe() as events:
            job = await engine.submit(request())
            await until(lambda: len(wiro.runs) > len(done))
            task_id = wiro.runs[-1].task_id
            assert task_id is not None
            wiro.finish(task_id)
            final, _, _ = await run_to_the_end(events, job.id, settle=0)
        assert final.status is JobState.SUCCEEDED
        return task_id

    done: list[str] = []
    done.append(await one_job())  # refused: polled, and the socket backs off
    assert not socket.available
    done.append(await one_job())  # still backing off: polled without trying the socket
    await asyncio.sleep(socket.retry_in)
    done.append(await one_job())  # the socket again

    assert wiro.socket.refused == 1
    assert [wiro.socket.registrations[task_id] for task_id in done] == [0, 0, 1]


async def test_after_a_restart_an_unfinished_job_resumes_on_the_socket(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    wiro.hold()
    first, _ = await make_socket_engine()
    job = await first.submit(request())
    await until(lambda: bool(wiro.socket.registrations))
    await first.close()

    second, _ = await make_socket_engine()
    task_id = wiro.runs[0].task_id
    assert task_id is not None
    await until(lambda: wiro.socket.registrations[task_id] >= 2)
    with second.subscribe() as events:
        wiro.advance(task_id, TaskStatus.START)
        wiro.finish(task_id)
        final, kinds, _ = await run_to_the_end(events, job.id)
    assert final.status is JobState.SUCCEEDED
    assert kinds.count(EventKind.FINISHED) == 1


async def test_a_job_resumed_long_after_its_task_ended_is_finished_by_one_look(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory, store: Store
) -> None:
    wiro.hold()
    first, _ = await make_socket_engine()
    job = await first.submit(request())
    await until(lambda: bool(wiro.socket.registrations))
    await first.close()
    task_id = wiro.runs[0].task_id
    assert task_id is not None
    wiro.finish(task_id)
    # As if the bot had been down for a minute.
    stored = await store.jobs.get(job.id)
    assert stored is not None and stored.submitted_at is not None
    await store.jobs.update(job.id, submitted_at=stored.submitted_at - 60)

    second, _ = await make_socket_engine()
    with second.subscribe() as events:
        final, _, _ = await run_to_the_end(events, job.id)
    assert final.status is JobState.SUCCEEDED
    assert wiro.socket.registrations[task_id] == 1  # no second registration needed


async def test_cancelling_a_job_followed_on_the_socket_kills_the_task_once(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    wiro.hold()
    engine, _ = await make_socket_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        task_id = None
        await until(lambda: bool(wiro.socket.registrations))
        task_id = wiro.runs[0].task_id
        assert task_id is not None
        wiro.advance(task_id, TaskStatus.START)
        await asyncio.sleep(0.1)
        await engine.cancel(job.id)
        final, kinds, _ = await run_to_the_end(events, job.id)
    assert final.status is JobState.CANCELLED
    assert wiro.tasks[task_id].stopped_by == "kill"
    assert kinds.count(EventKind.FINISHED) == 1


async def test_a_task_that_ended_before_the_socket_heard_of_it_is_found_by_one_look(
    wiro: WiroStandIn, wiro_client: WiroClient, store: Store, tmp_path: Path
) -> None:
    socket = WiroSocket(wiro.socket_url, idle_timeout=5.0)
    polling = PollingWatcher(wiro_client, DurationEstimates(), PollSchedule(0.01, 0.05))
    engine = JobEngine(
        client=wiro_client,
        store=store,
        catalog=Catalog.from_seeds(),
        settings=fast_settings(),
        outputs_dir=tmp_path / "outputs",
        default_model=MODEL,
        watcher=SocketWatcher(socket, polling, quiet_after=0.2),
    )
    await engine.start()
    wiro.socket.fail_next("mute")
    try:
        with engine.subscribe() as events:
            job = await engine.submit(request())
            final, kinds, _ = await run_to_the_end(events, job.id, within=2.0)
    finally:
        await engine.close()
        await socket.close()
    assert final.status is JobState.SUCCEEDED
    assert kinds.count(EventKind.FINISHED) == 1
    assert final.task_id is not None and wiro.detail_calls[final.task_id] == 1


def test_an_empty_socket_url_means_polling_only() -> None:
    assert build_socket(Settings(wiro={"socket_url": ""})) is None
    socket = build_socket(Settings(wiro={"socket_url": "ws://127.0.0.1:9/socket"}))
    assert socket is not None and socket.url == "ws://127.0.0.1:9/socket"


async def test_a_line_per_step_moves_the_job_on_without_an_event_per_line(
    wiro: WiroStandIn, make_socket_engine: SocketEngineFactory
) -> None:
    # Real models print a progress line per step; subscribers hear of about every tenth of the
    # way, and the job always holds the latest step.
    wiro.hold()
    engine, _ = await make_socket_engine()
    with engine.subscribe() as events:
        job = await engine.submit(request())
        await until(lambda: bool(wiro.runs) and wiro.runs[0].task_id is not None)
        task_id = wiro.runs[0].task_id
        assert task_id is not None
        wiro.advance(task_id, TaskStatus.START)
        for step in range(1, 31):
            wiro.report_progress(task_id, round(100 * step / 30), step, 30)
            await until(lambda sent=step: wiro.socket.progress_sent[task_id] >= sent)

        def latest_step() -> int | None:
            live = engine.peek(job.id)
            return live.progress.step if live is not None and live.progress is not None else None

        await until(lambda: latest_step() == 30)
        wiro.finish(task_id)
        final, _, progress = await run_to_the_end(events, job.id)
    assert final.status is JobState.SUCCEEDED
    assert 5 <= len(progress) <= 15
    assert progress[-1].fraction == 1.0
