"""One job, one owner: processes sharing a database never run a job twice, and a dead
process's jobs are taken over once its claim lapses."""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import time
from pathlib import Path

from bot.jobs.job import JobState
from bot.store import NewJob, Store
from tests.jobs.conftest import ALICE, BOB, MODEL, EngineFactory, finished
from tests.wiro_standin import WiroStandIn

ROOT = Path(__file__).resolve().parents[2]


def waiting_job(prompt: str, n: int, **claim: object) -> NewJob:
    inputs = {
        "prompt": prompt,
        "seed": n,
        "samples": 1,
        "steps": 28,
        "guidance": 3.5,
        "width": 1024,
        "height": 1024,
    }
    who = ALICE if n % 2 else BOB
    return NewJob(MODEL, prompt, inputs, n, who, time.time(), JobState.WAITING, **claim)  # type: ignore[arg-type]


async def start_engine_process(
    db: Path, wiro: WiroStandIn, outputs: Path, expected: int
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.jobs.engine_process",
        str(db),
        wiro.base_url,
        wiro.api_key,
        wiro.api_secret or "",
        str(outputs),
        str(expected),
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    async with asyncio.timeout(30):
        line = await process.stdout.readline()
    assert line.strip() == b"ready", line
    return process


async def test_two_processes_on_one_database_run_each_job_exactly_once(
    store: Store, tmp_path: Path
) -> None:
    async with WiroStandIn(api_secret=None) as wiro:
        await two_processes_share_the_work(wiro, store, tmp_path)


async def two_processes_share_the_work(wiro: WiroStandIn, store: Store, tmp_path: Path) -> None:
    # Key-only mode: two processes' millisecond nonces could collide in signature mode, and
    # that is not what this test is about.
    db = tmp_path / "wirobot.db"
    count = 12
    # Both processes are up before the jobs appear, so both reach for every one of them.
    first, second = await asyncio.gather(
        start_engine_process(db, wiro, tmp_path / "out", count),
        start_engine_process(db, wiro, tmp_path / "out", count),
    )
    for n in range(count):
        await store.jobs.create(waiting_job(f"job {n}", n))
    try:
        async with asyncio.timeout(30):
            results = await asyncio.gather(first.communicate(), second.communicate())
    except TimeoutError:
        for process in (first, second):
            if process.returncode is None:
                process.kill()
        stuck = await store.jobs.unfinished()
        raise AssertionError(f"the processes did not finish; unfinished: {stuck}") from None
    assert first.returncode == 0 and second.returncode == 0, results
    shares = [int(out.split()[-1]) for out, _ in results]
    assert sum(shares) == count, shares  # every job finished by exactly one of them
    print("jobs finished by each process:", shares)

    sent = collections.Counter(run.body["prompt"] for run in wiro.runs if run.task_id)
    assert sent == {f"job {n}": 1 for n in range(count)}
    assert not await store.jobs.unfinished()
    for n in range(count):
        job = await store.jobs.get(n + 1)
        assert job is not None and job.status is JobState.SUCCEEDED, (job.error_kind, job.error)


async def test_a_job_another_live_process_holds_is_left_to_it(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    held = await store.jobs.create(
        waiting_job("theirs", 1, owner="elsewhere", lease_until=time.time() + 3600)
    )
    await make_engine()
    await asyncio.sleep(0.3)
    assert wiro.calls["run"] == 0
    stored = await store.jobs.get(held.id)
    assert stored is not None and stored.status is JobState.WAITING


async def test_a_dead_processs_jobs_are_taken_over_when_its_claim_lapses(
    make_engine: EngineFactory, wiro: WiroStandIn, store: Store
) -> None:
    orphan = await store.jobs.create(
        waiting_job("orphan", 1, owner="dead-process", lease_until=time.time() + 0.5)
    )
    engine = await make_engine(claim_lease_seconds=1)
    with engine.subscribe([orphan.id]) as events:
        assert wiro.calls["run"] == 0  # still claimed at the start
        done = await finished(events, orphan.id, within=5)
    assert done.status is JobState.SUCCEEDED
    assert wiro.calls["run"] == 1
