"""The job store at history scale: what is stored, how pages and searches are read, and that
every hot query uses an index (a full scan of jobs costs seconds at a million jobs)."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.jobs.job import JobState, Requester
from bot.store import HistoryQuery, NewJob, Store
from bot.store.jobs import _FINAL_SQL, _JOB_COLUMNS, _SPEND_PART_SQL, _history_sql
from bot.store.windows import member_since
from tests.conftest import open_store

GUILD = 100
ALICE = Requester(user_id=1, guild_id=GUILD, channel_id=1000)
BOB = Requester(user_id=2, guild_id=GUILD, channel_id=1001)


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def make(
    store: Store,
    prompt: str,
    who: Requester = ALICE,
    *,
    seed: int = 7,
    status: JobState = JobState.SUCCEEDED,
    created_at: float | None = None,
    **options: object,
) -> int:
    inputs = {"prompt": prompt, "steps": 30, **options, "seed": seed}
    job = await store.jobs.create(
        NewJob(
            model="wavymulder/portraitplus",
            prompt=prompt,
            inputs=inputs,
            seed=seed,
            requester=who,
            created_at=time.time() if created_at is None else created_at,
        )
    )
    if status is not JobState.CREATED:
        await store.jobs.update(job.id, status=status)
    return job.id


async def test_a_job_reads_back_with_every_input_in_order(store: Store) -> None:
    job_id = await make(store, "a lighthouse", seed=42, negative_prompt="fog", width=512)

    job = await store.jobs.get(job_id)

    assert job is not None
    assert job.inputs == {
        "prompt": "a lighthouse",
        "steps": 30,
        "negative_prompt": "fog",
        "width": 512,
        "seed": 42,
    }
    assert list(job.inputs) == ["prompt", "steps", "negative_prompt", "width", "seed"]


async def test_jobs_with_the_same_options_share_one_input_set(store: Store) -> None:
    for n in range(20):
        await make(store, f"cat {n}", seed=n)
    await make(store, "a dog", steps_override=1)

    assert await rows(store, "SELECT COUNT(*) FROM input_sets") == [(2,)]
    assert await rows(store, "SELECT DISTINCT inputs FROM jobs") == [("",)]
    job = await store.jobs.get(3)
    assert job is not None and job.inputs["prompt"] == "cat 2" and job.inputs["seed"] == 2


async def test_pages_walk_by_keyset_newest_first(store: Store) -> None:
    ids = [await make(store, f"cat {n}") for n in range(25)]
    newest = ids[::-1]
    query = HistoryQuery(guild_id=GUILD, user_id=ALICE.user_id, limit=10)

    first = [j.id for j in await store.jobs.history(query)]
    second = [
        j.id
        for j in await store.jobs.history(
            HistoryQuery(**{**vars_of(query), "before_id": first[-1]})
        )
    ]
    back = [
        j.id
        for j in await store.jobs.history(HistoryQuery(**{**vars_of(query), "after_id": second[0]}))
    ]

    assert first == newest[:10]
    assert second == newest[10:20]
    assert back == first  # the page just before, still newest first
    assert await store.jobs.count_history(query) == 25
    assert await store.jobs.count_history(query, cap=12) == 12


async def rows(store: Store, sql: str) -> list[tuple[object, ...]]:
    """What a statement reads, straight from the store's database (either backend)."""
    async with store._conn.execute(sql) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


def vars_of(query: HistoryQuery) -> dict[str, object]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


async def test_search_finds_whole_words_within_the_scope(store: Store) -> None:
    grey = await make(store, "a grey CAT on a roof")
    await make(store, "a grey cat", BOB)
    odd = await make(store, "100% cat_ish, naïve")
    await make(store, "a lighthouse")
    await make(store, "a grey cat elsewhere", Requester(user_id=1, guild_id=GUILD + 1))

    async def found(search: str, *, mine: bool = True) -> list[int]:
        query = HistoryQuery(guild_id=GUILD, user_id=ALICE.user_id if mine else None, search=search)
        jobs = await store.jobs.history(query)
        assert await store.jobs.count_history(query) == len(jobs)
        return [j.id for j in jobs]

    assert await found("grey cat") == [grey]
    assert await found("GREY cat ON") == [grey]  # any case
    assert await found("grey c") == []  # whole words
    cats = await make(store, "two cats asleep")
    assert await found("cat") == [cats, odd, grey]  # "cats" is a "cat", and contains it
    assert await found("cats") == [cats]
    assert len(await found("grey", mine=False)) == 2  # Bob's too, not the other server's
    assert await found("% cat_") == [odd]  # % and _ are plain characters
    assert await found("naïve") == [odd]
    assert await found("%") == [odd]  # no word at all: still answered
    assert await found('"') == []
    assert await found("zebra") == []


async def test_hot_queries_use_indexes(store: Store, database: str, tmp_path: Path) -> None:
    """No `SCAN jobs` (reading every job) and no sorting in the plans of what /history,
    /settings show and start-up run."""
    if database.startswith("postgresql"):
        pytest.skip("reads SQLite's query plans (PostgreSQL's planner decides by statistics)")
    await make(store, "a cat")
    conn = sqlite3.connect(tmp_path / "wirobot.db")
    queries: list[tuple[str, tuple[object, ...]]] = []
    for query in (
        HistoryQuery(guild_id=GUILD, user_id=1),
        HistoryQuery(guild_id=GUILD),
        HistoryQuery(guild_id=GUILD, channel_ids=frozenset({1000, 1001}), model="m"),
        HistoryQuery(guild_id=GUILD, search="grey cat"),
        HistoryQuery(guild_id=GUILD, user_id=1, search="grey cat", before_id=10),
        HistoryQuery(guild_id=GUILD, after_id=10),
        HistoryQuery(guild_id=GUILD, model="wavymulder/portraitplus"),
        HistoryQuery(guild_id=GUILD, user_id=1, model="Adel_AI/Comics-Factory-v1"),
    ):
        sql, params = _history_sql(query, _JOB_COLUMNS, order="DESC")
        queries.append((sql, (*params, 11)))
        sql, params = _history_sql(query, "1", order=None)
        queries.append((f"SELECT COUNT(*) FROM ({sql} LIMIT 1000)", params))
    queries += [
        (f"SELECT * FROM jobs WHERE status NOT IN {_FINAL_SQL} ORDER BY id", ()),
        (
            f"SELECT * FROM jobs WHERE status IN {_FINAL_SQL} AND posted_at IS NULL"
            " AND source = 'discord' ORDER BY id",
            (),
        ),
        (_SPEND_PART_SQL, (GUILD, 0.0, 86400.0)),
        (
            "UPDATE jobs SET interaction_token = NULL WHERE interaction_token IS NOT NULL"
            " AND interaction_at < ?",
            (0.0,),
        ),
    ]
    for sql, params in queries:
        plan = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert not re.search(r"SCAN jobs(?!_search| USING INDEX jobs_un)|TEMP B-TREE", plan), (
            f"{sql}\n{plan}"
        )
    conn.close()


async def test_a_members_windows_walk_the_members_index_from_the_windows_first_id(
    store: Store, database: str, tmp_path: Path
) -> None:
    """The daily limit, member budgets and "/usage mine" read the member's jobs of the
    window only: not the server's jobs of the window, not the member's whole history."""
    if database.startswith("postgresql"):
        pytest.skip("reads SQLite's query plans (PostgreSQL's planner decides by statistics)")
    await make(store, "a cat")
    conn = sqlite3.connect(tmp_path / "wirobot.db")
    for guild, until in ((GUILD, None), (GUILD, 30 * 86400.0), (None, None)):
        window, params = member_since(guild, 1, 86400.0, until)
        sql = f"SELECT COUNT(*) FROM jobs WHERE {window}"
        plan = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "USING INDEX jobs_by_member (guild_id=? AND user_id=? AND rowid>?)" in plan, plan
    conn.close()


async def test_start_up_finds_unfinished_and_unposted_jobs(store: Store) -> None:
    running = await make(store, "running", status=JobState.RUNNING)
    unposted = await make(store, "done, not posted")
    posted = await make(store, "done and posted")
    await store.jobs.update(posted, posted_at=time.time())
    await make(store, "from the command line", Requester(source="cli"))

    assert [j.id for j in await store.jobs.unfinished()] == [running]
    assert [j.id for j in await store.jobs.unposted()] == [unposted]


async def test_typical_durations_come_from_recent_successes(store: Store) -> None:
    for n, seconds in enumerate([10.0, 12.0, 50.0]):
        job_id = await make(store, f"cat {n}")
        await store.jobs.update(job_id, submitted_at=1000.0, finished_at=1000.0 + seconds)
    failed = await make(store, "failed", status=JobState.FAILED)
    await store.jobs.update(failed, submitted_at=1000.0, finished_at=1999.0)

    assert await store.jobs.typical_durations() == {"wavymulder/portraitplus": 12.0}


async def test_expired_interaction_tokens_are_forgotten(store: Store) -> None:
    old = await make(store, "old")
    fresh = await make(store, "fresh")
    now = time.time()
    await store.jobs.update(old, interaction_token="old-secret", interaction_at=now - 3600)
    await store.jobs.update(fresh, interaction_token="fresh-secret", interaction_at=now - 60)

    assert await store.jobs.forget_interaction_tokens(issued_before=now - 900) == 1

    kept = await store.jobs.get(fresh)
    gone = await store.jobs.get(old)
    assert kept is not None and kept.interaction_token == "fresh-secret"
    assert gone is not None and gone.interaction_token is None


async def test_the_model_filter_finds_that_models_jobs_only(store: Store) -> None:
    async def job(model: str, prompt: str = "a cat") -> int:
        created = await store.jobs.create(
            NewJob(model, prompt, {"prompt": prompt}, 1, ALICE, time.time())
        )
        return created.id

    portrait = await job("wavymulder/portraitplus")
    comics = await job("Adel_AI/Comics-Factory-v1")
    odd = await job("someone/mödel+1")  # a slug the index cannot spell: read plainly
    await job("Adel_AI/Comics-Factory-v2")

    async def found(model: str, search: str | None = None) -> list[int]:
        query = HistoryQuery(guild_id=GUILD, user_id=1, model=model, search=search)
        return [j.id for j in await store.jobs.history(query)]

    assert await found("wavymulder/portraitplus") == [portrait]
    assert await found("Adel_AI/Comics-Factory-v1", search="cat") == [comics]
    assert await found("someone/mödel+1") == [odd]
    anywhere = HistoryQuery(model="wavymulder/portraitplus")  # the command line: every server
    assert [j.id for j in await store.jobs.history(anywhere)] == [portrait]


async def test_spend_all_time_and_recent(store: Store) -> None:
    now = time.time()
    # Out of order on purpose: a clock that went back must not hide a job.
    for age_days, cost in ((40, 0.5), (10, 0.25), (1, None), (31, 1.0), (29.9, 2.0)):
        job_id = await make(store, "a cat", created_at=now - age_days * 86400)
        await store.jobs.update(job_id, cost=cost)
    await make(store, "elsewhere", Requester(user_id=1, guild_id=GUILD + 1))
    cli = await make(store, "from the command line", Requester(source="cli"))
    await store.jobs.update(cli, cost=0.125)

    assert await store.jobs.spend(guild_id=GUILD) == (5, 3.75)
    assert await store.jobs.spend(guild_id=GUILD, since=now - 30 * 86400) == (3, 2.25)
    assert await store.jobs.spend(guild_id=GUILD, since=now + 60) == (0, 0.0)
    assert await store.jobs.spend(guild_id=None) == (1, 0.125)
    assert await store.jobs.spend(guild_id=GUILD + 7) == (0, 0.0)

    await store.jobs.update(cli, cost=None)  # a cost taken back
    assert await store.jobs.spend(guild_id=None) == (1, 0.0)
