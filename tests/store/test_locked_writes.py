"""Writes outside the job path (server settings, budgets, names, links, kept prices) outlast
another process holding the SQLite file's write lock: they wait and are stored, not lost."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.catalog.pricing import ModelPricing
from bot.store import GuildSettings, Store
from bot.store.spend import Budget
from bot.wiro.types import PriceRule

GUILD = 5

#: Each write outside the job path, and a read (on another connection) that finds it stored.
WRITES: dict[str, tuple[Callable[[Store], Awaitable[Any]], str]] = {
    "server settings": (
        lambda s: s.guilds.save(GuildSettings(guild_id=GUILD, max_steps=20)),
        "SELECT max_steps FROM guild_settings",
    ),
    "a model default": (
        lambda s: s.guilds.set_model_default(GUILD, "m", "steps", 25),
        "SELECT value FROM model_defaults",
    ),
    "a budget": (
        lambda s: s.spend.save_budget(Budget(GUILD, server_monthly=Decimal("10"))),
        "SELECT server_monthly_pico FROM guild_budgets",
    ),
    "a budget alert's mark": (
        lambda s: s.spend.mark_alert(GUILD, "2026-11", 50),
        "SELECT threshold FROM budget_alerts",
    ),
    "a kept price": (
        lambda s: s.spend.put_pricing(
            "a/b", ModelPricing((PriceRule(price=Decimal("0.01"), method="cpr"),))
        ),
        "SELECT slug FROM model_pricing",
    ),
    "a member's name": (
        lambda s: s.gallery.remember_name(GUILD, 6, "Ann"),
        "SELECT name FROM member_names",
    ),
    "a gallery link": (
        lambda s: s.gallery.create_grant(
            guild_id=GUILD,
            user_id=6,
            channels=None,
            nsfw_channels=frozenset(),
            from_nsfw=False,
            admin=False,
            lifetime=60,
        ),
        "SELECT user_id FROM gallery_links",
    ),
    "the gallery's signing key": (
        lambda s: s.gallery.signing_key(),
        "SELECT name FROM web_secrets",
    ),
    "a model's cached details": (
        lambda s: s.tools.put_tool_detail("a/b", {"slug": "a/b"}),
        "SELECT slug FROM tool_details",
    ),
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "wirobot.db") as store:
        # "database is locked" at once, as SQLite says it (busy_timeout or not) when this
        # connection's snapshot is older than another process's commit.
        await store._conn.execute("PRAGMA busy_timeout = 0")
        yield store


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another process's connection in the middle of a write transaction."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO web_secrets (name, value, created_at) VALUES ('other', x'00', 0)")
    return other


async def test_a_plain_write_fails_at_once_while_another_process_writes(
    store: Store, tmp_path: Path
) -> None:
    other = hold_write_lock(tmp_path / "wirobot.db")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await store._conn.execute("INSERT INTO member_names VALUES (1, 2, 'x', 0)")
    finally:
        other.rollback()
        other.close()


@pytest.mark.parametrize("what", list(WRITES))
async def test_a_write_waits_out_another_processs_write_lock_and_is_stored(
    store: Store, tmp_path: Path, what: str
) -> None:
    write, stored = WRITES[what]
    other = hold_write_lock(tmp_path / "wirobot.db")
    try:
        task = asyncio.create_task(write(store))
        # The lock is still held after the write has had time to try (and be refused)
        # several times; then the other process commits.
        await asyncio.sleep(0.15)
        assert not task.done()
        other.commit()
        await asyncio.wait_for(task, timeout=20)
    finally:
        other.close()
    with sqlite3.connect(tmp_path / "wirobot.db") as reader:
        assert reader.execute(stored).fetchall()
        # The other process's write is kept too.
        assert reader.execute("SELECT 1 FROM web_secrets WHERE name = 'other'").fetchall()
