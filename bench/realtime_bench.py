"""Realtime benchmark: how soon the engine knows a task ended, and what it costs in Task/Detail.

    python bench/realtime_bench.py [--jobs 50] [--stagger 30] [--crowd 1000] [--rows-only]

Side by side against the Wiro stand-in (in a child process: Wiro is another machine), for
task lengths of 3, 10, 30 and 90 s (+-10 %) and a mixed set on one model whose durations follow
steps x pixels x samples (2 s to 80 s), three ways of following a task:

- `socket`: the engine on Wiro's WebSocket (polling only as its fallback);
- `polling`: the engine with the socket off;
- `mcp`: Wiro's MCP client's schedule (every 2 s to 15 s, 5 s to 60 s, then 10 s).

Every row and way runs in its own engine at the same time (as separate bots would), each first
finishing a few warm-up jobs (a bot that has run before knows its models), then `--jobs` jobs
arriving over `--stagger` seconds. Printed per row: the delay from Wiro ending a task to the
engine reporting the job finished (p50, p95), Detail calls per job, and both as ratios to MCP.
Then `--crowd` jobs at once on the socket: event-loop lag p99, peak RSS, delay and calls.

Targets: socket delay p50 < 0.1 s and <= 2 Detail calls per job; polling delay p50 < 1 s and
no more calls per job than MCP in every row; the crowd with loop lag p99 < 50 ms and RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.catalog.catalog import Catalog
from bot.jobs.engine import JobEngine, JobRequest
from bot.jobs.events import EventKind
from bot.jobs.job import Job, JobState, Requester
from bot.jobs.watch import OnUpdate, TaskWatcher, mcp_interval
from bot.settings import JobSettings
from bot.store import Store
from bot.wiro import Credentials, WiroClient
from bot.wiro.socket import WiroSocket
from bot.wiro.types import Task
from tests.wiro_standin import WiroStandIn

ROWS: dict[str, str] = {
    # row -> the model it runs (any seed model; the stand-in times tasks by the row)
    "3": "Adel_AI/Comics-Factory-v1",
    "10": "geelong_hillbilly/Facechain",
    "30": "ArsMachina/Ars-Niji-Style-v1",
    "90": "wavymulder/portraitplus",
    "mixed": "ArsMachina/Ars-Niji-Style-v1",
}
WAYS = ("socket", "polling", "mcp")
WARMUP = 5
_ROW_IN_PROMPT = re.compile(r"row=(\w+)")


# -- the stand-in, in a child process --------------------------------------------------------------


def task_seconds(prompt: str, inputs: dict[str, Any], rng: random.Random) -> float:
    """How long the stand-in makes a task run: the row's length, or for the mixed row in
    proportion to steps x pixels x samples; +-10 % either way."""
    found = _ROW_IN_PROMPT.search(prompt)
    row = found[1] if found else "10"
    if row == "mixed":
        work = (
            float(inputs.get("steps", 30))
            * float(inputs.get("width", 1024))
            * float(inputs.get("height", 1024))
            * float(inputs.get("samples", 1))
        )
        base = 1.0 + 12.0 * work / (30 * 1024 * 1024)
    else:
        base = float(row)
    return base * rng.uniform(0.9, 1.1)


async def serve() -> None:
    rng = random.Random(11)
    async with WiroStandIn() as wiro:
        original = wiro._new_task

        def new_task(slug: str, inputs: dict[str, Any]) -> Any:
            task = original(slug, inputs)
            task.run_seconds = task_seconds(str(inputs.get("prompt", "")), inputs, rng)
            return task

        wiro._new_task = new_task  # type: ignore[method-assign]
        info = {
            "base_url": wiro.base_url,
            "socket_url": wiro.socket_url,
            "api_key": wiro.api_key,
            "api_secret": wiro.api_secret,
        }
        print(json.dumps(info), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        stats = {
            "detail_calls": dict(wiro.detail_calls),
            "finished_at": {tid: task.finished_at for tid, task in wiro.tasks.items()},
            "socket_peak_open": wiro.socket.peak_open,
            "socket_registrations": sum(wiro.socket.registrations.values()),
        }
        print(json.dumps(stats), flush=True)


@asynccontextmanager
async def standin() -> AsyncIterator[tuple[dict[str, Any], Any]]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=2**26,
    )
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout
    try:
        info = json.loads(await stdout.readline())

        async def stats() -> dict[str, Any]:
            stdin.write(b"stats\n")
            await stdin.drain()
            return json.loads(await stdout.readline())  # type: ignore[no-any-return]

        yield info, stats
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()


# -- Wiro's MCP client's schedule, as a watcher ----------------------------------------------------


class MCPWatcher:
    """Polls every 2 s for the first 15 s, every 5 s until 60 s, then every 10 s."""

    def __init__(self, client: WiroClient) -> None:
        self._client = client

    async def watch(self, job: Job, on_update: OnUpdate) -> Task:
        assert job.task_id is not None
        submitted = job.submitted_at or time.time()
        while True:
            await asyncio.sleep(mcp_interval(time.time() - submitted))
            task = await self._client.task_detail(task_id=job.task_id)
            await on_update(task)
            if task.is_terminal:
                return task


# -- one engine ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    way: str
    row: str
    #: task id -> time.monotonic() when the engine reported the job finished.
    reported: dict[str, float]
    succeeded: int


def job_inputs(row: str, rng: random.Random) -> dict[str, object]:
    if row != "mixed":
        return {}
    return {
        "steps": rng.choice([10, 20, 30, 50]),
        "width": rng.choice([512, 768, 1024]),
        "height": rng.choice([512, 768, 1024]),
        "samples": rng.choice([1, 2, 4]),
    }


async def run_engine(
    way: str,
    row: str,
    info: dict[str, Any],
    client: WiroClient,
    folder: Path,
    *,
    jobs: int,
    stagger: float,
    seed: int,
) -> Outcome:
    socket = WiroSocket(info["socket_url"]) if way == "socket" else None
    watcher: TaskWatcher | None = MCPWatcher(client) if way == "mcp" else None
    rng = random.Random(seed)
    model = ROWS[row]
    async with await Store.open(folder / f"{way}-{row}.db") as store:
        engine = JobEngine(
            client=client,
            store=store,
            catalog=Catalog.from_seeds(),
            settings=JobSettings(
                max_concurrent=10_000,
                max_concurrent_per_guild=10_000,
                max_concurrent_per_user=10_000,
            ),
            outputs_dir=folder / f"{way}-{row}",
            default_model=model,
            watcher=watcher,
            socket=socket,
        )
        await engine.start()
        try:
            with engine.subscribe() as events:

                async def submit(n: int) -> Job:
                    return await engine.submit(
                        JobRequest(
                            prompt=f"bench row={row} n={n}",
                            requester=Requester(user_id=n, guild_id=1, channel_id=1),
                            model=model,
                            options=job_inputs(row, rng),
                        )
                    )

                done: dict[int, float] = {}
                wanted: set[int] = set()
                all_done = asyncio.Event()

                async def collect() -> None:
                    # Times are taken as events arrive, not when someone gets round to them.
                    async for event in events:
                        if event.kind is EventKind.FINISHED:
                            done[event.job.id] = time.monotonic()
                            if wanted and wanted <= done.keys():
                                all_done.set()

                collector = asyncio.create_task(collect())
                warm = [await submit(-n - 1) for n in range(WARMUP)]
                wanted.update(job.id for job in warm)
                await all_done.wait()
                wanted.clear()
                all_done.clear()
                # The measured jobs arrive over `stagger` seconds, as people would send them.
                measured: list[Job] = []
                for n in range(jobs):
                    measured.append(await submit(n))
                    await asyncio.sleep(stagger / jobs * rng.uniform(0.5, 1.5))
                wanted.update(job.id for job in measured)
                if not wanted <= done.keys():
                    await all_done.wait()
                collector.cancel()
                finished = dict(done)
        finally:
            await engine.close()
            if socket is not None:
                await socket.close()
        finals = [await store.jobs.get(job.id) for job in measured]
    reported = {job.task_id: finished[job.id] for job in finals if job is not None and job.task_id}
    succeeded = sum(1 for job in finals if job is not None and job.status is JobState.SUCCEEDED)
    return Outcome(way, row, reported, succeeded)


# -- the figures --------------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def figures(outcome: Outcome, stats: dict[str, Any]) -> dict[str, float]:
    delays = [at - stats["finished_at"][tid] for tid, at in outcome.reported.items()]
    calls = [stats["detail_calls"].get(tid, 0) for tid in outcome.reported]
    return {
        "p50": statistics.median(delays),
        "p95": percentile(delays, 0.95),
        "calls": sum(calls) / len(calls),
        "succeeded": outcome.succeeded,
    }


async def rows(jobs: int, stagger: float, only: list[str]) -> bool:
    async with (
        standin() as (info, stats),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        # One client for all: the stand-in wants the nonces of one key to grow.
        client = WiroClient(
            session, Credentials(info["api_key"], info["api_secret"]), base_url=info["base_url"]
        )
        with tempfile.TemporaryDirectory() as folder:
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(
                    run_engine(
                        way,
                        row,
                        info,
                        client,
                        Path(folder),
                        jobs=jobs,
                        stagger=stagger,
                        seed=n,
                    )
                    for n, (way, row) in enumerate((w, r) for r in only for w in WAYS)
                )
            )
            wall = time.monotonic() - started
        counts = await stats()
    table = {(o.row, o.way): figures(o, counts) for o in outcomes}
    print(f"{len(only)} rows x {len(WAYS)} ways, {jobs} jobs each, in {wall:.0f} s")
    print(
        f"{'row':>6} {'way':>8} {'ok':>4} {'delay p50':>10} {'p95':>8} {'calls/job':>10}"
        f" {'calls/MCP':>10} {'p50/MCP':>8}"
    )
    ok = True
    for row in only:
        mcp = table[(row, "mcp")]
        for way in WAYS:
            f = table[(row, way)]
            print(
                f"{row:>6} {way:>8} {f['succeeded']:>4.0f} {f['p50']:>9.3f}s {f['p95']:>7.3f}s"
                f" {f['calls']:>10.2f} {f['calls'] / mcp['calls']:>10.2f}"
                f" {f['p50'] / mcp['p50']:>8.2f}"
            )
            ok &= f["succeeded"] == jobs
        sock, poll = table[(row, "socket")], table[(row, "polling")]
        ok &= sock["p50"] < 0.1 and sock["calls"] <= 2
        ok &= poll["p50"] < 1.0 and poll["calls"] <= mcp["calls"]
    return ok


async def measure_lag(samples: list[float], stop: asyncio.Event, every: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(every)
        samples.append(loop.time() - before - every)


async def crowd(jobs: int, seconds: float) -> bool:
    async with (
        standin() as (info, stats),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        with tempfile.TemporaryDirectory() as folder:
            client = WiroClient(
                session,
                Credentials(info["api_key"], info["api_secret"]),
                base_url=info["base_url"],
            )
            socket = WiroSocket(info["socket_url"])
            async with await Store.open(Path(folder) / "crowd.db") as store:
                engine = JobEngine(
                    client=client,
                    store=store,
                    catalog=Catalog.from_seeds(),
                    settings=JobSettings(
                        max_concurrent=jobs,
                        max_concurrent_per_guild=jobs,
                        max_concurrent_per_user=jobs,
                    ),
                    outputs_dir=Path(folder) / "outputs",
                    default_model=ROWS["30"],
                    socket=socket,
                )
                await engine.start()
                lag: list[float] = []
                stop = asyncio.Event()
                lag_task = asyncio.create_task(measure_lag(lag, stop))
                reported: dict[int, float] = {}
                peak_open = 0
                with engine.subscribe() as events:
                    submitted = [
                        await engine.submit(
                            JobRequest(
                                prompt=f"bench row={seconds:g} n={n}",
                                requester=Requester(user_id=n, guild_id=n % 5, channel_id=1),
                                model=ROWS["30"],
                            )
                        )
                        for n in range(jobs)
                    ]
                    async with asyncio.timeout(seconds * 3 + 120):
                        while len(reported) < jobs:
                            event = await events.get()
                            peak_open = max(peak_open, socket.open_connections)
                            if event.kind is EventKind.FINISHED:
                                reported[event.job.id] = time.monotonic()
                stop.set()
                await lag_task
                finals = [await store.jobs.get(job.id) for job in submitted]
                await engine.close()
                await socket.close()
        counts = await stats()
    delays, calls = [], []
    for job in finals:
        assert job is not None and job.task_id is not None
        delays.append(reported[job.id] - counts["finished_at"][job.task_id])
        calls.append(counts["detail_calls"].get(job.task_id, 0))
    succeeded = sum(1 for job in finals if job and job.status is JobState.SUCCEEDED)
    lag_p99 = percentile(lag, 0.99) * 1000
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{jobs} jobs at once on the socket, {seconds:g} s tasks (+-10 %)")
    print(f"succeeded               {succeeded}")
    print(
        f"socket connections      {peak_open} open at once (stand-in saw "
        f"{counts['socket_peak_open']})"
    )
    print(
        f"finish -> reported p50  {statistics.median(delays):.3f} s   p95 "
        f"{percentile(delays, 0.95):.3f} s"
    )
    print(f"Detail calls per job    {sum(calls) / len(calls):.2f}")
    print(f"event-loop lag p99      {lag_p99:.1f} ms  target < 50 ms")
    print(f"peak RSS                {rss:.0f} MB  target < 300 MB")
    return succeeded == jobs and lag_p99 < 50 and rss < 300


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50, help="measured jobs per row and way")
    parser.add_argument("--stagger", type=float, default=30.0, help="seconds they arrive over")
    parser.add_argument("--crowd", type=int, default=1000, help="jobs at once on the socket")
    parser.add_argument("--crowd-seconds", type=float, default=30.0)
    parser.add_argument("--rows", default=",".join(ROWS), help="which rows: 3,10,30,90,mixed")
    parser.add_argument("--rows-only", action="store_true")
    parser.add_argument("--crowd-only", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    ok = True
    if not args.crowd_only:
        ok &= asyncio.run(rows(args.jobs, args.stagger, args.rows.split(",")))
    if not args.rows_only and args.crowd:
        ok &= asyncio.run(crowd(args.crowd, args.crowd_seconds))
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
