"""The history bench's queries on PostgreSQL beside SQLite, on the same jobs.

    python bench/postgres_history_bench.py [--jobs 1000000] [--samples 100]

Uses history_bench's database (built once into bench/.cache), migrates a copy through the
store, moves it into a PostgreSQL server this script starts (timed: that is
`wirobot migrate --from-sqlite`), then times the same /history, /settings show and start-up
queries through the store on both backends: p50 and p95 per query, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.history_bench import (
    CACHE,
    COMMON,
    MODELS,
    RARE,
    _fresh_copy,
    _member,
    _month,
    build,
    timed,
)
from bot.discord_views.history import COUNT_CAP, FILTERED_COUNT_CAP
from bot.store import HistoryQuery, Store
from tests.postgres_server import PostgresServer

Query = Callable[[Store, int], Awaitable[Any]]


def queries(jobs: int, picks: list[tuple[int, int, int]], big: int) -> dict[str, Query]:
    async def page(store: Store, query: HistoryQuery) -> None:
        # As /history counts: a filtered count stops sooner.
        filtered = query.search is not None or query.model is not None
        await store.jobs.history(query)
        await store.jobs.count_history(query, cap=FILTERED_COUNT_CAP if filtered else COUNT_CAP)

    async def spend(store: Store, guild: int) -> None:
        await store.jobs.spend(guild_id=guild)
        await store.jobs.spend(guild_id=guild, since=time.time() - 30 * 86400)

    return {
        "/history mine, page 1 + count": lambda s, i: page(
            s, HistoryQuery(guild_id=picks[i][0], user_id=picks[i][1], limit=11)
        ),
        "/history server, page 1 + count": lambda s, i: page(
            s, HistoryQuery(guild_id=picks[i][0], limit=11)
        ),
        "/history server, deep page + count": lambda s, i: page(
            s, HistoryQuery(guild_id=picks[i][0], limit=11, before_id=jobs // 50)
        ),
        "/history server, model filter + count": lambda s, i: page(
            s, HistoryQuery(guild_id=picks[i][0], limit=11, model=MODELS[i % 5])
        ),
        f"/history server, search rare '{RARE}'": lambda s, i: page(
            s, HistoryQuery(guild_id=picks[i][0], limit=11, search=RARE)
        ),
        f"/history server, search common '{COMMON}'": lambda s, i: page(
            s, HistoryQuery(guild_id=picks[i][0], limit=11, search=COMMON)
        ),
        "/history biggest server, page 1 + count": lambda s, i: page(
            s, HistoryQuery(guild_id=big, limit=11)
        ),
        "/history job:<id>": lambda s, i: s.jobs.get(1 + (i * 7919) % jobs),
        "/settings show: spend": lambda s, i: spend(s, picks[i][0]),
        "/settings show: budgets, month's spend": lambda s, i: _month(s, picks[i][0]),
        "/imagine: a member's day and month": lambda s, i: _member(s, *picks[i][:2]),
        "start-up: unfinished + unposted": lambda s, i: _start_up(s),
    }


async def _start_up(store: Store) -> None:
    await store.jobs.unfinished()
    await store.jobs.unposted()


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):7.2f} {p95:8.2f}"


async def run(jobs: int, samples: int) -> None:
    CACHE.mkdir(exist_ok=True)
    old = CACHE / f"history-{jobs}-v1.db"
    if not old.exists():
        print(f"building {jobs:,} jobs in {old} (once) ...", flush=True)
        build(old, jobs, guilds=1000, members=50_000)
    work = CACHE / "history-pg-work.db"
    _fresh_copy(old, work)
    lite = await Store.open(work)  # migrated to the current schema
    with sqlite3.connect(work) as conn:
        rows = conn.execute(
            "SELECT guild_id, user_id, channel_id FROM jobs WHERE guild_id IS NOT NULL"
            " AND id % 97 = 0"
        ).fetchall()
    rng = random.Random(2)
    picks = [tuple(rng.choice(rows)) for _ in range(samples)]
    counts: dict[int, int] = {}
    for g, _, _ in rows:
        counts[g] = counts.get(g, 0) + 1
    big = max(counts, key=lambda g: counts[g])

    server = PostgresServer()
    server.start()
    try:
        admin = await asyncpg.connect(server.url())
        await admin.execute("CREATE DATABASE history")
        await admin.close()
        pg = await Store.open_url(server.url("history"))
        started = time.perf_counter()
        copied = await pg.copy_from_sqlite(work)
        copy_s = time.perf_counter() - started
        total = sum(c.rows for c in copied)
        print(f"--from-sqlite: {total:,} rows in {copy_s:.1f} s ({total / copy_s:,.0f} rows/s)")
        # As autovacuum leaves a live database: statistics, and the visibility map that
        # index-only counts need (the copy's own VACUUM can run while autovacuum's first
        # ANALYZE of the new rows still holds them back, and leave the jobs unmarked).
        analyze = await asyncpg.connect(server.url("history"))
        await analyze.execute("VACUUM ANALYZE")
        await analyze.close()

        print(f"\n{jobs:,} jobs, {samples} samples each (ms)")
        print(f"  {'query':<44} {'SQLite p50':>10} {'p95':>8}   {'PostgreSQL p50':>14} {'p95':>8}")
        for name, make in queries(jobs, picks, big).items():  # type: ignore[arg-type]
            lite_times = await timed(samples, lambda i, m=make: m(lite, i))  # type: ignore[misc]
            pg_times = await timed(samples, lambda i, m=make: m(pg, i))  # type: ignore[misc]
            print(f"  {name:<44} {summary(lite_times):>19}   {summary(pg_times):>23}")
        await pg.close()
    finally:
        await lite.close()
        server.stop()
        _fresh_copy(old, work)
        work.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(run(args.jobs, args.samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
