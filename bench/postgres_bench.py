"""Jobs per second with one, two and three engine processes on one PostgreSQL (and, for
comparison, one process on SQLite), against the Wiro stand-in in its own process.

    python bench/postgres_bench.py [--jobs 600] [--seconds 0.5] [--processes 1 2 3]

Each worker process opens its own pool and engine, submits its share of the jobs and waits
for every one of them to finish; jobs per second = all jobs / the wall time from the first
submission to the last finish. Tasks take `--seconds` at the stand-in, so the figure measures
what the processes and the database add around Wiro. Starts its own PostgreSQL server
(Debian's postgresql package, as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.engine_bench import MODEL, standin
from bot.catalog.catalog import Catalog
from bot.jobs.engine import JobEngine, JobRequest
from bot.jobs.events import EventKind
from bot.jobs.job import JobState, Requester
from bot.settings import JobSettings
from bot.store import Store
from bot.wiro import Credentials, WiroClient
from tests.postgres_server import PostgresServer


async def worker(
    database: str, wiro: dict[str, Any], jobs: int, index: int, start_at: float
) -> None:
    """One process's share: submit `jobs`, wait for them all, print one JSON line."""
    with tempfile.TemporaryDirectory() as folder:
        store = (
            await Store.open_url(database)
            if database.startswith("postgresql://")
            else await Store.open(database)
        )
        async with aiohttp.ClientSession() as session, store:
            client = WiroClient(
                session, Credentials(wiro["api_key"], wiro["api_secret"]), base_url=wiro["base_url"]
            )
            engine = JobEngine(
                client=client,
                store=store,
                catalog=Catalog.from_seeds(),
                settings=JobSettings(
                    max_concurrent=jobs, max_concurrent_per_guild=jobs, max_concurrent_per_user=jobs
                ),
                outputs_dir=Path(folder) / "outputs",
                default_model=MODEL,
            )
            await engine.start()
            await asyncio.sleep(max(0.0, start_at - time.time()))  # every worker at once
            cpu = time.process_time()
            ids: set[int] = set()
            done: set[int] = set()
            with engine.subscribe() as events:
                for n in range(jobs):
                    job = await engine.submit(
                        JobRequest(
                            prompt=f"bench {index}-{n}",
                            requester=Requester(user_id=n % 50, guild_id=n % 5, channel_id=1),
                            model=MODEL,
                        )
                    )
                    ids.add(job.id)
                async with asyncio.timeout(600):
                    while not ids <= done:
                        event = await events.get()
                        if event.kind is EventKind.FINISHED:
                            done.add(event.job.id)
            finished = time.time()
            cpu = time.process_time() - cpu
            succeeded = 0
            refused: dict[str, int] = {}  # why the others failed (a nonce refused, ...)
            for job_id in ids:
                stored = await store.jobs.get(job_id)
                if stored is not None and stored.status is JobState.SUCCEEDED:
                    succeeded += 1
                else:
                    why = f"{stored.status.value}: {stored.error_kind}" if stored else "lost"
                    refused[why] = refused.get(why, 0) + 1
            await engine.close()
    print(
        json.dumps({"finished": finished, "succeeded": succeeded, "cpu": cpu, "refused": refused}),
        flush=True,
    )


async def run(database: str, wiro: dict[str, Any], jobs: int, processes: int) -> dict[str, Any]:
    start_at = time.time() + 3.0  # after every worker has opened its pool and engine
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--worker",
            database,
            json.dumps(wiro),
            str(jobs // processes),
            str(index),
            str(start_at),
            stdout=asyncio.subprocess.PIPE,
        )
        for index in range(processes)
    ]
    results = []
    for child in children:
        out, _ = await child.communicate()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    wall = max(r["finished"] for r in results) - start_at
    total = jobs // processes * processes
    refused: dict[str, int] = {}
    for r in results:
        for why, count in r["refused"].items():
            refused[why] = refused.get(why, 0) + count
    return {
        "processes": processes,
        "jobs": total,
        "succeeded": sum(r["succeeded"] for r in results),
        "wall_seconds": wall,
        "jobs_per_second": total / wall,
        # The bot processes' own CPU (not PostgreSQL's nor the stand-in's), per job.
        "cpu_ms_per_job": sum(r["cpu"] for r in results) * 1000 / total,
        "refused": refused,
    }


async def bench(jobs: int, seconds: float, counts: list[int]) -> list[dict[str, Any]]:
    server = PostgresServer()
    server.start()
    results = []
    try:
        async with standin(seconds, seconds / 5, same_process=False) as (wiro, _):
            with tempfile.TemporaryDirectory() as folder:
                results.append(
                    {"backend": "sqlite", **await run(f"{folder}/bench.db", wiro, jobs, 1)}
                )
            for count in counts:
                name = f"bench_{count}"
                admin = await asyncpg.connect(server.url())
                await admin.execute(f"CREATE DATABASE {name}")
                await admin.close()
                await (await Store.open_url(server.url(name))).close()  # migrated once
                results.append(
                    {"backend": "postgresql", **await run(server.url(name), wiro, jobs, count)}
                )
    finally:
        server.stop()
    return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        database, wiro, jobs, index, start_at = sys.argv[2:7]
        asyncio.run(worker(database, json.loads(wiro), int(jobs), int(index), float(start_at)))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=0.5, help="task duration at Wiro")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print(
        f"{'backend':<11} {'processes':>9} {'jobs':>6} {'ok':>6} {'wall s':>8} {'jobs/s':>8}"
        f" {'CPU ms/job':>10}  not ok"
    )
    ok = True
    for r in asyncio.run(bench(args.jobs, args.seconds, args.processes)):
        print(
            f"{r['backend']:<11} {r['processes']:>9} {r['jobs']:>6} {r['succeeded']:>6}"
            f" {r['wall_seconds']:>8.2f} {r['jobs_per_second']:>8.1f}"
            f" {r['cpu_ms_per_job']:>10.2f}  {r['refused'] or ''}"
        )
        ok = ok and r["succeeded"] == r["jobs"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
