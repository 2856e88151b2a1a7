"""The gallery's prompt search is the history's: whole words through the search index (FTS5
on SQLite, full text on PostgreSQL), so a rare word in a large server reads the few jobs that
have it, not every job of the server; the prompt must still contain the text searched."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bot.jobs.job import JobState, Output, Requester
from bot.store import NewJob, Store
from bot.store.gallery import GalleryQuery, _page_sql
from bot.store.postgres import translate
from tests.conftest import open_store

GUILD = 884_390_127_593_472_011
OTHER_GUILD = 884_390_127_593_472_999
ALICE = Requester(user_id=741_852_963_852_741_963, guild_id=GUILD, channel_id=1000)
BOB = Requester(user_id=741_852_963_852_741_964, guild_id=GUILD, channel_id=1001)


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def succeeded(store: Store, prompt: str, who: Requester = ALICE, model: str = "m/one") -> int:
    job = await store.jobs.create(
        NewJob(
            model=model,
            prompt=prompt,
            inputs={"prompt": prompt},
            seed=1,
            requester=who,
            created_at=time.time(),
        )
    )
    output = Output(position=0, name="a.png", content_type="image/png", size=3, url="u")
    await store.jobs.finish(job.id, [output], status=JobState.SUCCEEDED, cost=0.01)
    return job.id


def prompts(jobs: list[object]) -> list[str]:
    return [job.prompt for job in jobs]  # type: ignore[attr-defined]


async def test_a_search_finds_whole_words_within_the_server_and_the_filters(store: Store) -> None:
    cats = await succeeded(store, "Grey cats on a xylophone")
    await succeeded(store, "a dog on a xylophone", BOB, model="m/two")
    await succeeded(store, "a xylophonist")  # not the word
    await succeeded(
        store,
        "a cat on a xylophone",
        Requester(user_id=1, guild_id=OTHER_GUILD, channel_id=5),
    )

    def page(**filters: object) -> GalleryQuery:
        return GalleryQuery(guild_id=GUILD, channels=None, **filters)  # type: ignore[arg-type]

    found = await store.gallery.jobs(page(search="xylophone"))
    assert prompts(found) == ["a dog on a xylophone", "Grey cats on a xylophone"]
    assert found[1].id == cats and found[1].outputs
    # Case does not matter; the text searched must be in the prompt (stemming only finds
    # candidates: "cat" is in "cats", so it is found too).
    assert prompts(await store.gallery.jobs(page(search="GREY CATS"))) == [
        "Grey cats on a xylophone"
    ]
    assert prompts(await store.gallery.jobs(page(search="cat"))) == ["Grey cats on a xylophone"]
    assert prompts(await store.gallery.jobs(page(search="xylophone", user_id=BOB.user_id))) == [
        "a dog on a xylophone"
    ]
    assert prompts(await store.gallery.jobs(page(search="xylophone", model="m/one"))) == [
        "Grey cats on a xylophone"
    ]
    assert await store.gallery.jobs(page(search="piano")) == []
    # Only stop words or no word at all: the text alone decides.
    assert prompts(await store.gallery.jobs(page(search="on a"))) == [
        "a dog on a xylophone",
        "Grey cats on a xylophone",
    ]
    # Words match whole, as in /history: part of a word finds nothing.
    assert await store.gallery.jobs(page(search="xylophonis")) == []
    assert await store.gallery.jobs(page(search="%")) == []


async def test_search_pages_follow_on_from_the_last_job_shown(store: Store) -> None:
    ids = [await succeeded(store, f"a lighthouse, study {n}") for n in range(5)]
    first = await store.gallery.jobs(
        GalleryQuery(guild_id=GUILD, channels=None, search="lighthouse", limit=3)
    )
    rest = await store.gallery.jobs(
        GalleryQuery(
            guild_id=GUILD, channels=None, search="lighthouse", limit=3, before=first[-1].id
        )
    )
    assert [job.id for job in first + rest] == ids[::-1]


def _rows(count: int, rare_every: int) -> list[tuple[object, ...]]:
    """A large server's succeeded jobs, a rare word in one prompt of `rare_every`."""
    rows = []
    for n in range(count):
        prompt = f"a xylophone, study {n}" if n % rare_every == 0 else f"a cat in a hat, {n}"
        rows.append(
            (
                GUILD,
                1000 + n % 40,
                100 + n % 50,
                "m/one",
                prompt,
                json.dumps({"prompt": prompt}),
                n,
                "succeeded",
                1_700_000_000.0 + n,
            )
        )
    return rows


_INSERT = (
    "INSERT INTO jobs (guild_id, channel_id, user_id, model, prompt, inputs, seed, status,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def test_on_sqlite_a_rare_word_reads_the_words_index_not_the_server(
    tmp_path: Path,
) -> None:
    path = tmp_path / "wirobot.db"
    async with await Store.open(path) as store:
        with sqlite3.connect(path) as conn:
            conn.executemany(_INSERT, _rows(5000, 1000))
        query = GalleryQuery(guild_id=GUILD, channels=frozenset({1000, 1001}), search="xylophone")
        match = await store.jobs.search_match(query.search, guild_id=GUILD)
        found = await store.gallery.jobs(
            GalleryQuery(guild_id=GUILD, channels=None, search="xylophone")
        )
        assert len(found) == 5
    sql, params = _page_sql(query, match, None)
    with sqlite3.connect(path) as conn:
        plan = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        # Rows read: every step of SQLite's machine, counted, for the search and for the same
        # page without it (which reads the server's jobs until 24 are shown).
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(count, 1)
        conn.execute(sql, params).fetchall()
        searched = steps[0]
    assert plan.startswith("SCAN jobs_search VIRTUAL TABLE"), plan
    assert "SCAN jobs" not in plan.replace("SCAN jobs_search", ""), plan
    assert "USING INTEGER PRIMARY KEY" in plan, plan
    # Five matches in 5,000 jobs: far fewer steps than reading the server's jobs once.
    assert searched < 5000, searched


async def test_on_postgresql_a_rare_word_reads_the_words_index_not_the_server(
    postgres_url: str,
) -> None:
    async with await Store.open_url(postgres_url) as store:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.executemany(translate(_INSERT), _rows(20_000, 4000))
            await conn.execute("ANALYZE jobs")
            query = GalleryQuery(
                guild_id=GUILD, channels=frozenset({1000, 1001}), search="xylophone"
            )
            match = await store.jobs.search_match(query.search, guild_id=GUILD)
            assert match is not None
            sql, params = _page_sql(query, match, None)
            plan = await conn.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {translate(sql)}",
                *params,
            )
        finally:
            await conn.close()
        found = await store.gallery.jobs(
            GalleryQuery(guild_id=GUILD, channels=None, search="xylophone")
        )
        assert len(found) == 5
    text = json.dumps(plan)
    assert "jobs_prompt_words" in text, text
    # Rows the plan looked at in jobs: the five with the word, not the server's 20,000.
    read = [
        node for node in _nodes(json.loads(plan)[0]["Plan"]) if node.get("Relation Name") == "jobs"
    ]
    assert read and all(
        node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0) <= 50 for node in read
    ), text


def _nodes(node: dict[str, object]) -> list[dict[str, object]]:
    children = node.get("Plans", [])
    assert isinstance(children, list)
    return [node, *(n for child in children for n in _nodes(child))]
