"""Processes sharing one PostgreSQL database share the limits: together they never have more
jobs at Wiro than jobs.max_concurrent, nor more than a server's or a member's share; a process
held back runs its jobs as soon as the others' finish (a notice from the database wakes it,
a periodic look is the safety net); and a Cancel pressed in any process stops the job where
it is."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.catalog.catalog import Catalog
from bot.jobs.cancelling import CancelOutcome
from bot.jobs.engine import JobEngine
from bot.jobs.events import EventKind, Subscription
from bot.jobs.job import JobState, Requester
from bot.store import NewJob, Store
from bot.wiro import WiroClient
from bot.wiro.types import TaskStatus
from tests.jobs.conftest import (
    ALICE,
    BOB,
    MODEL,
    EngineFactory,
    fast_settings,
    finished,
    request,
)
from tests.wiro_standin import WiroStandIn

CAROL = Requester(user_id=3, guild_id=200, channel_id=2000)

Processes = Callable[..., Awaitable[tuple[JobEngine, JobEngine]]]


async def all_finished(events: Subscription, ids: set[int]) -> set[JobState]:
    """The final states of these jobs, in whatever order they finish."""
    states: dict[int, JobState] = {}
    async with asyncio.timeout(10):
        while set(states) != ids:
            event = await events.get()
            if event.kind is EventKind.FINISHED and event.job.id in ids:
                states[event.job.id] = event.job.status
    return set(states.values())


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 - the stand-in and the engine have no event
            await asyncio.sleep(0.01)


def run_of(wiro: WiroStandIn, prompt: str) -> str | None:
    """The task id of the Run that carried this prompt, once Wiro has it."""
    tasks = [r.task_id for r in wiro.runs if r.body["prompt"] == prompt and r.task_id]
    assert len(tasks) <= 1, f"{prompt!r} was Run {len(tasks)} times"
    return tasks[0] if tasks else None


@pytest.fixture
async def processes(
    postgres_url: str, wiro_client: WiroClient, tmp_path: Path
) -> AsyncIterator[Processes]:
    """Two engines, each with its own pool on the same database: two processes. A slot freed
    must wake the other process through the database's notice: the look again is a minute
    away unless a test asks otherwise."""
    stores: list[Store] = []
    engines: list[JobEngine] = []

    async def make(**settings: Any) -> tuple[JobEngine, JobEngine]:
        values: dict[str, Any] = {"max_concurrent": 3, "shared_recheck_seconds": 60}
        values.update(settings)
        for n in range(2):
            store = await Store.open_url(postgres_url)
            stores.append(store)
            engines.append(
                JobEngine(
                    client=wiro_client,
                    store=store,
                    catalog=Catalog.from_seeds(),
                    settings=fast_settings(**values),
                    outputs_dir=tmp_path / f"outputs-{n}",
                    default_model=MODEL,
                    rng=random.Random(n),
                )
            )
        for engine in engines:
            await engine.start()
        return engines[0], engines[1]

    yield make
    for engine in engines:
        await engine.close(grace=0)
    for store in stores:
        await store.close()


async def test_processes_together_keep_to_max_concurrent(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes()
    wiro.hold()
    with first.subscribe() as first_events, second.subscribe() as second_events:
        mine = [await first.submit(request(f"first {n}")) for n in range(3)]
        await until(lambda: len(wiro.runs) == 3)
        theirs = [await second.submit(request(f"second {n}")) for n in range(2)]
        # The second process tried, and found every slot taken by the first's jobs.
        await until(lambda: second._dispatcher.holding_back)
        assert len(wiro.runs) == 3
        for job in theirs:
            waiting = await second.get(job.id)
            assert waiting is not None and waiting.status is JobState.WAITING

        for run in list(wiro.runs):
            assert run.task_id is not None
            wiro.finish(run.task_id)
        assert await all_finished(first_events, {j.id for j in mine}) == {JobState.SUCCEEDED}
        # Slots are free again: the notice wakes the second process (its look again is a
        # minute away), and its jobs go.
        for job in theirs:
            await until(lambda job=job: run_of(wiro, job.prompt) is not None, within=5)
            task_id = run_of(wiro, job.prompt)
            assert task_id is not None
            wiro.finish(task_id)
            assert (await finished(second_events, job.id)).status is JobState.SUCCEEDED
    assert len(wiro.runs) == 5


async def test_a_member_share_holds_across_processes_and_others_go_meanwhile(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes(max_concurrent=8, max_concurrent_per_user=1)
    wiro.hold()
    with second.subscribe() as second_events:
        alices_first = await first.submit(request("alice in the first process", ALICE))
        await until(lambda: run_of(wiro, alices_first.prompt) is not None)
        alices_second = await second.submit(request("alice in the second process", ALICE))
        bobs = await second.submit(request("bob in the second process", BOB))
        # Bob's job goes; Alice's waits for her one slot, held by the first process.
        await until(lambda: run_of(wiro, bobs.prompt) is not None)
        await until(lambda: second._dispatcher.holding_back)
        assert run_of(wiro, alices_second.prompt) is None

        task_id = run_of(wiro, alices_first.prompt)
        assert task_id is not None
        wiro.finish(task_id)
        await until(lambda: run_of(wiro, alices_second.prompt) is not None, within=5)
        for job in (alices_second, bobs):
            task_id = run_of(wiro, job.prompt)
            assert task_id is not None
            wiro.finish(task_id)
            assert (await finished(second_events, job.id)).status is JobState.SUCCEEDED


async def test_a_server_share_holds_across_processes(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes(max_concurrent=8, max_concurrent_per_guild=2)
    wiro.hold()
    ours = [
        await first.submit(request("alice's", ALICE)),
        await second.submit(request("bob's", BOB)),
    ]
    await until(lambda: all(run_of(wiro, job.prompt) for job in ours))
    third = await first.submit(request("alice's second", ALICE))
    elsewhere = await second.submit(request("carol's, another server", CAROL))
    await until(lambda: run_of(wiro, elsewhere.prompt) is not None)
    await until(lambda: first._dispatcher.holding_back)
    assert run_of(wiro, third.prompt) is None  # the server's two slots are taken
    task_id = run_of(wiro, "bob's")
    assert task_id is not None
    wiro.finish(task_id)
    await until(lambda: run_of(wiro, third.prompt) is not None, within=5)


async def test_without_a_notice_the_look_again_runs_the_held_job(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes(max_concurrent=1, shared_recheck_seconds=0.2)
    # The second process hears nothing (as if its notices' connection were lost).
    assert second._notices is not None
    await second._notices.close()
    wiro.hold()
    mine = await first.submit(request("first"))
    await until(lambda: run_of(wiro, mine.prompt) is not None)
    theirs = await second.submit(request("second"))
    await until(lambda: second._dispatcher.holding_back)
    task_id = run_of(wiro, mine.prompt)
    assert task_id is not None
    wiro.finish(task_id)
    await until(lambda: run_of(wiro, theirs.prompt) is not None, within=5)


async def test_cancel_in_another_process_stops_the_task_where_it_runs(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes()
    wiro.hold()
    with first.subscribe() as first_events:
        job = await first.submit(request("to be cancelled from elsewhere"))
        await until(lambda: (j := first.peek(job.id)) is not None and j.task_id is not None)
        result = await second.cancel(job.id)
        assert result.outcome is CancelOutcome.ASKED  # of the first process
        done = await finished(first_events, job.id)
    assert done.status is JobState.CANCELLED
    task_id = run_of(wiro, job.prompt)
    assert task_id is not None
    assert wiro.tasks[task_id].status is TaskStatus.CANCEL
    assert wiro.calls["cancel"] == 1
    stored = await second.get(job.id)
    assert stored is not None and stored.status is JobState.CANCELLED


async def test_cancel_in_another_process_drops_a_waiting_job_where_it_waits(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes(max_concurrent=1)
    wiro.hold()
    with first.subscribe() as first_events, second.subscribe() as second_events:
        running = await first.submit(request("holds the only slot"))
        await until(lambda: run_of(wiro, running.prompt) is not None)
        waiting = await first.submit(request("waits in the first process's line"))
        assert first.queue_position(waiting.id) == 1
        result = await second.cancel(waiting.id)
        assert result.outcome is CancelOutcome.DROPPED
        # The first process hears it: out of its line, announced there (where it was made).
        done = await finished(first_events, waiting.id)
        assert done.status is JobState.CANCELLED
        assert first.queue_position(waiting.id) is None
        # Announced once: the second process, which only asked, says nothing of it.
        assert not [e for e in second_events.take() if e.kind is EventKind.FINISHED]
        task_id = run_of(wiro, running.prompt)
        assert task_id is not None
        wiro.finish(task_id)
        assert (await finished(first_events, running.id)).status is JobState.SUCCEEDED
    assert run_of(wiro, waiting.prompt) is None  # never Run
    assert wiro.calls["cancel"] == 0


async def test_cancel_of_a_job_no_live_process_holds_works_from_anywhere(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes()
    wiro.hold()
    now = time.time()
    gone = "wirobot-host:1:deadbeef"  # a process that died with its jobs claimed
    waiting = await second.store.jobs.create(
        NewJob(
            MODEL,
            "left waiting",
            {"prompt": "left waiting", "seed": 1},
            1,
            ALICE,
            now,
            JobState.WAITING,
            owner=gone,
            lease_until=now - 1,
        )
    )
    with second.subscribe() as events:
        result = await second.cancel(waiting.id)
        assert result.outcome is CancelOutcome.DROPPED
        assert (await finished(events, waiting.id)).status is JobState.CANCELLED

    # One at Wiro: the process that cancels it takes it over and stops it itself.
    job = await first.submit(request("its process dies"))
    await until(lambda: (j := first.peek(job.id)) is not None and j.task_id is not None)
    # The first process is gone: it follows the task no more, holds no lease, hears nothing.
    following = first._book.tasks.pop(job.id)
    following.cancel()
    first._book.forget(job)
    async with second.store._conn.execute(
        "UPDATE jobs SET owner = 'gone', lease_until = 0 WHERE id = ?", (job.id,)
    ):
        pass
    result = await second.cancel(job.id)
    assert result.outcome is CancelOutcome.CANCELLED
    task_id = run_of(wiro, job.prompt)
    assert task_id is not None and wiro.tasks[task_id].status is TaskStatus.CANCEL
    stored = await second.store.jobs.get(job.id)
    assert stored is not None and stored.status is JobState.CANCELLED


async def test_a_process_that_stops_hands_its_jobs_to_another_at_once(
    processes: Processes, wiro: WiroStandIn
) -> None:
    first, second = await processes(max_concurrent=1)  # the leases last a minute
    wiro.hold()
    at_wiro = await first.submit(request("at Wiro when its process stops"))
    await until(lambda: run_of(wiro, at_wiro.prompt) is not None)
    waiting = await first.submit(request("in line when its process stops"))
    with second.subscribe() as events:
        await first.close(grace=0)  # a rolling deploy: it gives up its jobs
        # The second process hears it and takes both over, without waiting for a lease.
        await until(lambda: second.peek(at_wiro.id) is not None, within=5)
        task_id = run_of(wiro, at_wiro.prompt)
        assert task_id is not None
        wiro.finish(task_id)
        assert (await finished(events, at_wiro.id)).status is JobState.SUCCEEDED
        await until(lambda: run_of(wiro, waiting.prompt) is not None, within=5)
        task_id = run_of(wiro, waiting.prompt)
        assert task_id is not None
        wiro.finish(task_id)
        assert (await finished(events, waiting.id)).status is JobState.SUCCEEDED


async def test_on_sqlite_a_cancel_from_another_engine_is_found_at_the_next_look(
    make_engine: EngineFactory, wiro: WiroStandIn
) -> None:
    # One SQLite file, two engines (as the bot and the CLI): no notices, only the look
    # every claim_lease_seconds / 3.
    first = await make_engine(max_concurrent=1, claim_lease_seconds=1.5)
    second = await make_engine(max_concurrent=1, claim_lease_seconds=1.5)
    wiro.hold()
    with first.subscribe() as events:
        running = await first.submit(request("at Wiro"))
        await until(lambda: (j := first.peek(running.id)) is not None and j.task_id is not None)
        waiting = await first.submit(request("in line"))
        assert (await second.cancel(waiting.id)).outcome is CancelOutcome.DROPPED
        assert (await second.cancel(running.id)).outcome is CancelOutcome.ASKED
        ids = {waiting.id, running.id}
        assert await all_finished(events, ids) == {JobState.CANCELLED}
    task_id = run_of(wiro, running.prompt)
    assert task_id is not None and wiro.tasks[task_id].status is TaskStatus.CANCEL
    assert run_of(wiro, waiting.prompt) is None
