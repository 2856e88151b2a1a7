"""Group commits: a burst of job writes shares commits, and each write is stored when awaited."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs.job import JobState, Output, Requester
from bot.store import NewJob, Store, batch

WHO = Requester(user_id=1, guild_id=2, channel_id=3)


def new_job(n: int = 0) -> NewJob:
    return NewJob(
        model="m", prompt=f"p{n}", inputs={"prompt": f"p{n}"}, seed=n, requester=WHO, created_at=1.0
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "jobs.db") as store:
        yield store


def read_elsewhere(path: Path, sql: str) -> list[tuple[object, ...]]:
    """What another process reading the file sees: only committed rows."""
    with sqlite3.connect(path) as other:
        return other.execute(sql).fetchall()


async def test_a_burst_of_jobs_is_stored_in_a_few_commits(store: Store, tmp_path: Path) -> None:
    jobs = await asyncio.gather(*(store.jobs.create(new_job(n)) for n in range(500)))
    await asyncio.gather(*(store.jobs.update(j.id, status=JobState.WAITING) for j in jobs))

    assert len({j.id for j in jobs}) == 500
    assert store.writes.writes == 1000
    assert store.writes.commits <= 10
    rows = read_elsewhere(tmp_path / "jobs.db", "SELECT status, COUNT(*) FROM jobs GROUP BY 1")
    assert rows == [("waiting", 500)]


async def test_a_write_is_committed_when_its_await_returns(store: Store, tmp_path: Path) -> None:
    job = await store.jobs.create(new_job())
    await store.jobs.update(job.id, status=JobState.RUNNING, task_id="t-1")
    assert read_elsewhere(tmp_path / "jobs.db", "SELECT status, task_id FROM jobs") == [
        ("running", "t-1")
    ]


async def test_a_failing_write_fails_alone_and_the_others_of_its_commit_are_stored(
    store: Store, tmp_path: Path
) -> None:
    first, second = await store.jobs.create(new_job(1)), await store.jobs.create(new_job(2))
    results = await asyncio.gather(
        store.jobs.update(first.id, status=JobState.RUNNING),
        store.writes.write(
            ("UPDATE jobs SET status = 'x' WHERE id = ?", (second.id,)),
            ("UPDATE no_such_table SET a = 1", ()),
        ),
        store.jobs.update(second.id, task_id="t-2"),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sqlite3.OperationalError)
    assert store.writes.commits >= 1
    # The failed write's first statement was rolled back with it.
    assert read_elsewhere(tmp_path / "jobs.db", "SELECT id, status, task_id FROM jobs") == [
        (first.id, "running", None),
        (second.id, "created", "t-2"),
    ]


async def test_outputs_and_final_fields_are_stored_together(store: Store) -> None:
    job = await store.jobs.create(new_job())
    output = Output(position=0, name="a.png", content_type="image/png", size=3, url="u")
    await store.jobs.finish(job.id, [output], status=JobState.SUCCEEDED, cost=0.5)
    stored = await store.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobState.SUCCEEDED and stored.cost == 0.5
    assert [o.name for o in stored.outputs] == ["a.png"]
    with pytest.raises(ValueError, match="not updatable"):
        await store.jobs.finish(job.id, [], prompt="changed")


async def test_a_cancelled_caller_does_not_undo_its_write(store: Store, tmp_path: Path) -> None:
    job = await store.jobs.create(new_job())
    writing = asyncio.create_task(store.jobs.update(job.id, status=JobState.CANCELLED))
    await asyncio.sleep(0)
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    await store.writes.drain()
    assert read_elsewhere(tmp_path / "jobs.db", "SELECT status FROM jobs") == [("cancelled",)]


async def test_only_a_job_still_in_its_state_is_claimed(store: Store) -> None:
    job = await store.jobs.create(new_job())
    claims = await asyncio.gather(
        store.jobs.claim_status(job.id, JobState.CREATED, JobState.WAITING),
        store.jobs.claim_status(job.id, JobState.CREATED, JobState.WAITING),
    )
    assert sorted(claims) == [False, True]


async def test_on_postgresql_a_burst_shares_transactions_and_a_failing_write_fails_alone(
    postgres_url: str,
) -> None:
    async with await Store.open_url(postgres_url) as pg:
        jobs = await asyncio.gather(*(pg.jobs.create(new_job(n)) for n in range(200)))
        assert len({j.id for j in jobs}) == 200
        assert pg.writes.commits < 200

        first, second = jobs[0], jobs[1]
        results = await asyncio.gather(
            pg.jobs.update(first.id, status=JobState.RUNNING),
            pg.writes.write(
                ("UPDATE jobs SET status = 'x' WHERE id = ?", (second.id,)),
                ("UPDATE no_such_table SET a = 1", ()),
            ),
            pg.jobs.update(second.id, task_id="t-2"),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], Exception)
        stored = await pg.jobs.get(second.id)
        assert stored is not None and stored.status is JobState.CREATED
        assert stored.task_id == "t-2"
        got = await pg.jobs.get(first.id)
        assert got is not None and got.status is JobState.RUNNING


async def test_after_a_burst_the_database_file_itself_holds_the_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches are applied on the event loop without checkpoints of their own: the
    checkpoints (which sync to disk) run beside it, so the write-ahead log does not grow."""
    monkeypatch.setattr(batch, "CHECKPOINT_EVERY", 0.0)
    path = tmp_path / "jobs.db"
    async with await Store.open(path) as store:
        await asyncio.gather(*(store.jobs.create(new_job(n)) for n in range(300)))
        await store.writes.drain()
        await store.writes.checkpointed()
        # The main file alone, without its write-ahead log: what a checkpoint copied there.
        alone = tmp_path / "alone.db"
        alone.write_bytes(path.read_bytes())
        assert read_elsewhere(alone, "SELECT COUNT(*) FROM jobs") == [(300,)]


async def test_an_in_memory_database_stores_a_burst_too() -> None:
    async with await Store.open(":memory:") as store:
        jobs = await asyncio.gather(*(store.jobs.create(new_job(n)) for n in range(50)))
        assert len({j.id for j in jobs}) == 50
        assert store.writes.commits < 50
        stored = await store.jobs.get(jobs[-1].id)
        assert stored is not None and stored.prompt == "p49"
