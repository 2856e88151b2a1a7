"""Recent reads of a server's settings and budget (the hot paths of a burst): this process's
own changes show at once, another process's within a moment, and a read that raced a write
is never kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.store import GuildSettings, Store
from bot.store.recent import Recent
from bot.store.spend import Budget
from tests.conftest import open_store

GUILD = 884_390_127_593_472_011


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def test_this_processs_changes_show_at_once_in_recent_reads(store: Store) -> None:
    assert await store.guilds.recent(GUILD) == GuildSettings(GUILD)
    assert await store.guilds.recent_model_defaults(GUILD, "m/one") == {}
    assert (await store.spend.recent_budget(GUILD)).server_monthly is None

    await store.guilds.save(GuildSettings(GUILD, default_model="m/two", max_steps=30))
    await store.guilds.set_model_default(GUILD, "m/one", "steps", 20)
    await store.spend.save_budget(Budget(GUILD, Decimal("5")))

    assert await store.guilds.recent(GUILD) == GuildSettings(
        GUILD, default_model="m/two", max_steps=30
    )
    assert await store.guilds.recent_model_defaults(GUILD, "m/one") == {"steps": 20}
    assert (await store.spend.recent_budget(GUILD)).server_monthly == Decimal("5")

    await store.guilds.clear_model_defaults(GUILD, "m/one")
    assert await store.guilds.recent_model_defaults(GUILD, "m/one") == {}


async def test_another_processs_change_is_read_fresh_where_it_matters(
    store: Store, database: str
) -> None:
    assert await store.guilds.recent(GUILD) == GuildSettings(GUILD)
    async with await open_store(database) as other:
        await other.guilds.save(GuildSettings(GUILD, max_samples=2))
    # The recent read may still show the old settings for a moment; a plain read never does.
    assert await store.guilds.get(GUILD) == GuildSettings(GUILD, max_samples=2)


def test_a_kept_read_lasts_its_moment_and_no_longer() -> None:
    now = [100.0]
    recent: Recent[int, str] = Recent(keep=2.0, clock=lambda: now[0])
    recent.put(1, "old", recent.generation)
    now[0] += 1.9
    assert recent.get(1) == "old"
    now[0] += 0.1
    assert recent.get(1) is None


async def test_a_read_that_raced_a_write_is_not_kept() -> None:
    recent: Recent[int, str] = Recent()
    began = recent.generation
    await asyncio.sleep(0)  # the read is under way when the write lands
    recent.forget(1)
    recent.put(1, "read before the write", began)
    assert recent.get(1) is None
