"""Spend benchmark: what a budget check, a month's alert look and /usage cost on a big history.

    python bench/spend_bench.py [--jobs 200000] [--guilds 50] [--members 400] [--days 120]

Fills a fresh SQLite file with finished jobs (exact costs) spread over `days` days, `guilds`
servers and `members` members, a few hundred still waiting or running with an estimate, then
times (median of 50 runs, milliseconds):

- a budget check with all three budgets set (server month, member day, member month): what
  every /imagine pays before it is stored;
- the alert look for one server (its month's spend against 50/80/100 %);
- /usage's query for one server's month, and for all jobs of all time (`wirobot usage`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

from bot.jobs.budget import Budgets, month_of
from bot.jobs.job import Requester
from bot.store import Store
from bot.store.spend import Budget

MODELS = ("wavymulder/portraitplus", "Adel_AI/Comics-Factory-v1", "Hevok/Studio-Trigger")


async def fill(store: Store, jobs: int, guilds: int, members: int, days: int) -> None:
    rng = random.Random(1)
    now = time.time()
    conn = store._conn  # the bench writes in bulk, below the repositories
    rows = []
    for i in range(jobs):
        unfinished = i >= jobs - 300
        rows.append(
            (
                "discord",
                rng.randrange(guilds),
                1,
                rng.randrange(members),
                rng.choice(MODELS),
                "a prompt",
                json.dumps({"prompt": "a prompt", "seed": i, "samples": 1}),
                i,
                "running" if unfinished else "succeeded",
                now - rng.random() * days * 86_400,
                None if unfinished else rng.randrange(1, 20) * 1_000_000_000,
                3_000_000_000,
                str(i),
            )
        )
    await conn.executemany(
        "INSERT INTO jobs (source, guild_id, channel_id, user_id, model, prompt, inputs, seed,"
        " status, created_at, cost_pico, estimate_pico, task_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    await conn.commit()
    for guild in range(guilds):
        await store.spend.save_budget(
            Budget(guild, Decimal(1000), Decimal(5), Decimal(50), alerts_channel_id=guild + 1)
        )


async def timed(work: Callable[[], Awaitable[object]], runs: int = 50) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--guilds", type=int, default=50)
    parser.add_argument("--members", type=int, default=400)
    parser.add_argument("--days", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        async with await Store.open(Path(folder) / "bench.db") as store:
            started = time.perf_counter()
            await fill(store, args.jobs, args.guilds, args.members, args.days)
            print(f"filled {args.jobs} jobs in {time.perf_counter() - started:.1f} s")
            budgets = Budgets(store)
            who = Requester(user_id=7, guild_id=3, channel_id=1)
            now = time.time()
            month = month_of(now).start.timestamp()
            figures = {
                "budget check (3 budgets)": await timed(
                    lambda: budgets.check(who, Decimal("0.01"), now=now)
                ),
                "alert look (one server)": await timed(lambda: budgets.crossings(3, now=now)),
                "/usage server, month": await timed(
                    lambda: store.spend.usage(guild_id=3, since=month), runs=10
                ),
                "wirobot usage, all time": await timed(
                    lambda: store.spend.usage(guild_id=None, since=0), runs=3
                ),
            }
    for name, ms in figures.items():
        print(f"{name:<28} {ms:8.2f} ms (median)")


if __name__ == "__main__":
    asyncio.run(main())
