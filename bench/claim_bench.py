"""What a Run's claim costs: the plain compare-and-set (one process) beside the claim that
counts every process's jobs at Wiro (processes sharing a database), on SQLite and PostgreSQL.

    python bench/claim_bench.py [--active 1000] [--claims 500]

`--active` jobs are held at Wiro by another owner (what the counts read); then `--claims`
waiting jobs are claimed one after another each way. Prints milliseconds per claim, wall
time and this process's CPU time (the database server's own CPU is not in it). Wall times on a
busy machine are noisy; the CPU figures less so. Starts its own PostgreSQL server (Debian's
postgresql package, as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.jobs.job import JobState, Requester
from bot.store import NewJob, RunLimits, Store
from tests.postgres_server import PostgresServer

Waiting = list[tuple[int, Requester]]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fill(store: Store, active: int, waiting: int) -> Waiting:
    """`active` jobs held at Wiro by another process, and `waiting` jobs; returns the latter."""
    jobs: Waiting = []
    for n in range(active + waiting):
        who = Requester(user_id=n % 50, guild_id=n % 7, channel_id=1)
        inputs = {"prompt": f"job {n}", "seed": n}
        new = NewJob("m/one", f"job {n}", inputs, n, who, time.time(), JobState.WAITING)
        jobs.append(((await store.jobs.create(new)).id, who))
    now = time.time()
    for job_id, _ in jobs[:active]:
        await store.jobs.claim_run(job_id, "another", submitted_at=now, until=now + 3600)
    return jobs[active:]


async def claims(store: Store, jobs: Waiting, *, limited: bool) -> tuple[float, float]:
    """(wall ms, CPU ms) per claim."""
    limits = RunLimits(10**6, 10**6, 10**6)
    wall, used = time.perf_counter(), cpu()
    for job_id, who in jobs:
        now = time.time()
        if limited:
            await store.jobs.claim_run_within(
                job_id,
                "this",
                submitted_at=now,
                until=now + 3600,
                limits=limits,
                guild_id=who.guild_id,
                user_id=who.user_id,
            )
        else:
            await store.jobs.claim_run(job_id, "this", submitted_at=now, until=now + 3600)
    n = max(len(jobs), 1)
    return 1000 * (time.perf_counter() - wall) / n, 1000 * (cpu() - used) / n


async def measure(store: Store, backend: str, active: int, count: int) -> None:
    waiting = await fill(store, active, 2 * count)
    for limited, jobs in ((False, waiting[:count]), (True, waiting[count:])):
        wall, used = await claims(store, jobs, limited=limited)
        way = "counted (shared)" if limited else "plain"
        print(f"{backend:<11} {way:<17} {active:>7} {wall:>10.2f} {used:>10.2f}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=500)
    args = parser.parse_args()
    print(f"{'backend':<11} {'claim':<17} {'active':>7} {'wall ms':>10} {'CPU ms':>10}")
    with tempfile.TemporaryDirectory() as folder:
        async with await Store.open(Path(folder) / "claims.db") as store:
            await measure(store, "sqlite", args.active, args.claims)
    server = PostgresServer()
    server.start()
    try:
        async with await Store.open_url(server.url()) as store:
            await measure(store, "postgresql", args.active, args.claims)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
