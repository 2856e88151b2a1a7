"""The gallery's store on SQLite and on PostgreSQL alike: links, names, pages, spend."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.jobs.job import JobState, Output, Requester
from bot.store import NewJob, Store
from bot.store.gallery import GalleryQuery
from tests.conftest import open_store

GUILD = 884_390_127_593_472_011
ALICE = Requester(user_id=741_852_963_852_741_963, guild_id=GUILD, channel_id=1000)


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def test_a_link_a_page_names_and_spend_read_back_alike(store: Store) -> None:
    key = await store.gallery.signing_key()
    assert key == await store.gallery.signing_key() and len(key) >= 16

    grant = await store.gallery.create_grant(
        guild_id=GUILD,
        user_id=ALICE.user_id or 0,
        channels=frozenset({1000}),
        nsfw_channels=frozenset(),
        from_nsfw=False,
        admin=True,
        lifetime=600,
    )
    again = await store.gallery.grant(grant.id)
    assert again == grant and grant.channels == frozenset({1000})

    await store.gallery.remember_name(GUILD, 2, "bob")
    await store.gallery.remember_name(GUILD, 1, "Alice")
    assert await store.gallery.recent_members(GUILD) == [(1, "Alice"), (2, "bob")]
    assert await store.gallery.names(GUILD, [1, 2, None]) == {1: "Alice", 2: "bob"}

    now = time.time()
    job = await store.jobs.create(
        NewJob(
            model="m/one",
            prompt="a grey cat",
            inputs={"prompt": "a grey cat"},
            seed=1,
            requester=ALICE,
            created_at=now,
        )
    )
    output = Output(position=0, name="a.png", content_type="image/png", size=3, url="u")
    await store.jobs.finish(job.id, [output], status=JobState.SUCCEEDED, cost=0.25)
    page = await store.gallery.jobs(
        GalleryQuery(guild_id=GUILD, channels=frozenset({1000}), search="grey")
    )
    assert [j.id for j in page] == [job.id] and page[0].outputs[0].name == "a.png"
    days = await store.gallery.spend_by_day(GUILD)
    assert [(d.jobs, d.cost) for d in days] == [(1, Decimal("0.25"))]
    assert len(days[0].day) == 10
    assert await store.jobs.spend(guild_id=GUILD) == (1, Decimal("0.25"))


async def test_a_member_who_sees_no_channel_gets_an_empty_gallery(store: Store) -> None:
    # The bot left the server, or the member lost every channel: nothing, on both backends.
    job = await store.jobs.create(
        NewJob(
            model="m/one",
            prompt="a grey cat",
            inputs={"prompt": "a grey cat"},
            seed=1,
            requester=ALICE,
            created_at=time.time(),
        )
    )
    await store.jobs.finish(job.id, [], status=JobState.SUCCEEDED, cost=0.25)
    for search in (None, "grey"):
        query = GalleryQuery(guild_id=GUILD, channels=frozenset(), search=search)
        assert await store.gallery.jobs(query) == []
