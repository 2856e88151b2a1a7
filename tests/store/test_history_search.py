"""/history's search in a server with more jobs than PostgreSQL's first look reads (its
newest 200): a common word's pages and a rare word's old job come out the same on both
backends, newest first, within the server and the member asked for."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from bot.store import HistoryQuery, Store
from tests.conftest import open_store

GUILD = 884_390_127_593_472_011
OTHER = 884_390_127_593_472_999
ALICE = 741_852_963_852_741_963
BOB = 741_852_963_852_741_964


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def fill(store: Store) -> None:
    """300 jobs: every third a "lighthouse", the oldest a "xylophone", Bob's every fifth; and
    a job in another server with both words and Bob's member id."""
    rows = []
    for n in range(300):
        words = ["a", "cat"]
        if n % 3 == 0:
            words.append("lighthouse")
        if n == 0:
            words.append("xylophone")
        prompt = " ".join(words) + f" {n}"
        user = BOB if n % 5 == 0 else ALICE
        rows.append((GUILD, 1000, user, "m/one", prompt, json.dumps({"prompt": prompt}), n))
    rows.append((OTHER, 5, BOB, "m/one", "xylophone lighthouse", "{}", 0))
    for row in rows:
        await store._conn.execute(
            "INSERT INTO jobs (guild_id, channel_id, user_id, model, prompt, inputs, seed,"
            " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'succeeded', 1.0)",
            row,
        )
    await store._conn.commit()


async def test_search_pages_walk_the_whole_server_newest_first(store: Store) -> None:
    await fill(store)

    async def ids(**asked: object) -> list[int]:
        query = HistoryQuery(guild_id=GUILD, **asked)  # type: ignore[arg-type]
        return [job.id for job in await store.jobs.history(query)]

    lighthouses = list(range(298, 0, -3))  # ids are n + 1
    assert await ids(search="lighthouse", limit=11) == lighthouses[:11]
    seen: list[int] = []
    before = None
    while page := await ids(search="lighthouse", limit=40, before_id=before):
        seen += page
        before = page[-1]
    assert seen == lighthouses
    assert await ids(search="xylophone", limit=11) == [1]
    assert await ids(search="lighthouse xylophone", limit=11) == [1]
    bobs = [i for i in lighthouses if (i - 1) % 5 == 0]
    assert await ids(search="lighthouse", user_id=BOB, limit=100) == bobs
    assert await ids(search="xylophone", user_id=BOB, limit=11) == [1]
    assert await ids(search="xylophone", user_id=ALICE, limit=11) == []

    count = store.jobs.count_history
    assert await count(HistoryQuery(guild_id=GUILD, search="lighthouse"), cap=200) == 100
    assert await count(HistoryQuery(guild_id=GUILD, search="lighthouse"), cap=50) == 50
    assert await count(HistoryQuery(guild_id=GUILD, search="xylophone"), cap=200) == 1
    assert await count(HistoryQuery(guild_id=GUILD, user_id=BOB, search="lighthouse")) == 20
