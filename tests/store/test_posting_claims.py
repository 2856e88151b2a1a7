"""Posting claims, on SQLite and on PostgreSQL alike: one poster a result; a poster that died
midway is told so to the next; a result nobody posts is found."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bot.jobs.job import JobState
from bot.store import Store
from tests.conftest import open_store
from tests.store.test_repositories import new_job


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def ended(store: Store, at: float) -> int:
    job_id = await new_job(store)
    await store.jobs.finish(job_id, [], status=JobState.FAILED, finished_at=at)
    return job_id


async def test_one_process_posts_a_result_and_the_others_leave_it(store: Store) -> None:
    now = time.time()
    job_id = await ended(store, now)
    first = await store.jobs.claim_posting(job_id, "a", now=now, until=now + 5)
    assert first is not None and not first.interrupted
    assert await store.jobs.claim_posting(job_id, "b", now=now, until=now + 5) is None
    # The holder may claim again (a retry after a failed post); renewing keeps it.
    assert await store.jobs.claim_posting(job_id, "a", now=now, until=now + 5) is not None
    await store.jobs.renew_posting(job_id, "a", until=now + 60)
    assert await store.jobs.claim_posting(job_id, "b", now=now + 30, until=now + 35) is None
    await store.jobs.update(job_id, posted_at=now + 1)
    assert await store.jobs.claim_posting(job_id, "a", now=now + 90, until=now + 95) is None


async def test_a_poster_that_died_midway_is_reported_to_the_next(store: Store) -> None:
    now = time.time()
    job_id = await ended(store, now)
    assert await store.jobs.claim_posting(job_id, "dead", now=now, until=now + 1)
    later = await store.jobs.claim_posting(job_id, "b", now=now + 2, until=now + 3)
    assert later is not None and later.interrupted


async def test_results_nobody_posts_are_found_once_their_process_had_time(store: Store) -> None:
    now = time.time()
    orphan = await ended(store, now - 10)
    fresh = await ended(store, now)
    being_posted = await ended(store, now - 10)
    assert await store.jobs.claim_posting(being_posted, "a", now=now, until=now + 5)
    await new_job(store, "still waiting", status=JobState.WAITING)
    found = await store.jobs.orphaned_posts(now=now, ended_before=now - 5)
    assert [j.id for j in found] == [orphan]
    assert fresh not in [j.id for j in found]
    # The poster's lease passes: its job is an orphan too.
    later = await store.jobs.orphaned_posts(now=now + 10, ended_before=now + 5)
    assert [j.id for j in later] == [orphan, fresh, being_posted]
