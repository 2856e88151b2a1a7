"""The spend page's days, on both backends: the last 30 days per UTC day from the kept
per-day totals, the oldest day counted only from the moment the 30 days start."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bot.jobs.job import JobState, Requester
from bot.store import NewJob, Store
from bot.store.database import migrations
from tests.conftest import open_store

GUILD = 884_390_127_593_472_011
ALICE = Requester(user_id=741_852_963_852_741_963, guild_id=GUILD, channel_id=1000)
ELSEWHERE = Requester(user_id=741_852_963_852_741_963, guild_id=GUILD + 1, channel_id=1)
DAY = 86400.0


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def job(
    store: Store, at: float, cost: str | None, who: Requester = ALICE, model: str = "m/one"
) -> None:
    made = await store.jobs.create(
        NewJob(
            model=model, prompt="p", inputs={"prompt": "p"}, seed=1, requester=who, created_at=at
        )
    )
    if cost is not None:
        await store.jobs.finish(made.id, [], status=JobState.SUCCEEDED, cost=Decimal(cost))


def day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


async def test_spend_by_day_counts_the_last_30_days_from_their_first_moment(store: Store) -> None:
    now = time.time()
    start = now - 30 * DAY
    await job(store, start - 120, "5.00")  # just before the 30 days: not counted
    await job(store, start + 120, "0.25")  # the oldest day, inside the period
    await job(store, start + 180, None)  # not priced yet: counted, no cost
    await job(store, now - 3 * DAY, "1.50")
    await job(store, now - 3 * DAY + 1, "0.50", model="m/two")
    await job(store, now - 60, "0.10")
    await job(store, now - 60, "9.00", ELSEWHERE)  # another server's

    days = await store.gallery.spend_by_day(GUILD)

    expected: dict[str, tuple[int, Decimal]] = {}
    for at, cost in (
        (start + 120, "0.25"),
        (start + 180, "0"),
        (now - 3 * DAY, "1.50"),
        (now - 3 * DAY + 1, "0.50"),
        (now - 60, "0.10"),
    ):
        jobs, total = expected.get(day(at), (0, Decimal(0)))
        expected[day(at)] = (jobs + 1, total + Decimal(cost))
    assert [(d.day, d.jobs, d.cost) for d in days] == [
        (name, jobs, total) for name, (jobs, total) in sorted(expected.items(), reverse=True)
    ]
    # /settings show's month agrees with the page's days.
    jobs, cost = await store.jobs.spend(guild_id=GUILD, since=start)
    assert (jobs, cost) == (sum(d.jobs for d in days), sum(d.cost for d in days))

    # And per model, the most spent first.
    by_model = await store.gallery.spend_by_model(GUILD)
    assert [(m.model, m.jobs, m.cost) for m in by_model] == [
        ("m/one", 4, Decimal("1.85")),
        ("m/two", 1, Decimal("0.50")),
    ]


async def test_an_existing_sqlite_database_gets_its_model_days_from_its_jobs(
    tmp_path: Path,
) -> None:
    # A database written before migration 0007: no per-model days yet.
    path = tmp_path / "wirobot.db"
    now = time.time()
    with sqlite3.connect(path) as conn:
        for number, _, sql in migrations()[:6]:
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        conn.executemany(
            "INSERT INTO jobs (guild_id, channel_id, user_id, model, prompt, inputs, seed,"
            " status, created_at, cost_pico) VALUES (?, 1000, ?, ?, 'p', '{}', 1, ?, ?, ?)",
            [
                (GUILD, ALICE.user_id, "m/one", "succeeded", now - 2 * DAY, 10**12),
                (GUILD, ALICE.user_id, "m/two", "succeeded", now - 2 * DAY, 5 * 10**11),
                (GUILD, ALICE.user_id, "m/one", "succeeded", now - 60, 25 * 10**10),
                (GUILD + 1, ALICE.user_id, "m/one", "succeeded", now - 60, 10**12),
            ],
        )
    async with await Store.open(path) as store:
        by_model = await store.gallery.spend_by_model(GUILD)
    assert [(m.model, m.jobs, m.cost) for m in by_model] == [
        ("m/one", 2, Decimal("1.25")),
        ("m/two", 1, Decimal("0.50")),
    ]
