"""Several wirobot processes sharing one PostgreSQL database and one Wiro: one is killed
with SIGKILL while its task runs at Wiro, and another process finishes its job, without a
second Run."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.jobs.job import Job, JobState
from bot.store import HistoryQuery, Store
from tests.test_cli import process_env, start
from tests.wiro_standin import WiroStandIn


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Wait for a condition (looked at every 50 ms), failing after `within` seconds. Other
    processes and the database change it: there is no event of this process to wait on."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_killed_process_s_job_is_finished_by_another_and_run_once(
    tmp_path: Path, wiro: WiroStandIn, postgres_url: str
) -> None:
    wiro.hold()
    env = process_env(
        wiro,
        tmp_path / "unused" / "wirobot.db",
        WIROBOT_DATABASE__URL=postgres_url,
        WIROBOT_JOBS__CLAIM_LEASE_SECONDS="1",
    )

    async def imagine(prompt: str) -> asyncio.subprocess.Process:
        return await start(env, tmp_path, "imagine", prompt, "--out", prompt)

    async def runs(count: int) -> bool:
        return len(wiro.runs) >= count

    def task_of(prompt: str) -> str:
        (task_id,) = [r.task_id for r in wiro.runs if r.body["prompt"] == prompt]
        assert task_id is not None
        return task_id

    store = await Store.open_url(postgres_url)
    try:

        async def job_of(prompt: str) -> Job:
            jobs = await store.jobs.history(HistoryQuery(search=prompt, limit=5))
            return next(j for j in jobs if j.prompt == prompt)

        # Three processes, each with a job at Wiro.
        processes = {p: await imagine(p) for p in ("first", "second", "third")}
        await until(lambda: runs(3))
        processes["first"].send_signal(signal.SIGKILL)
        await processes["first"].wait()
        for prompt in ("second", "third"):
            wiro.finish(task_of(prompt))
            _, err = await processes[prompt].communicate()
            assert processes[prompt].returncode == 0, err.decode()

        # The killed process's lease passes; a new process takes its job over.
        async def lease_passed() -> bool:
            job = await job_of("first")
            async with store._conn.execute(
                "SELECT lease_until FROM jobs WHERE id = ?", (job.id,)
            ) as cursor:
                row = await cursor.fetchone()
            return row is not None and row[0] is not None and row[0] < time.time()

        await until(lease_passed)
        fourth = await imagine("fourth")
        await until(lambda: runs(4))
        wiro.finish(task_of("first"))

        async def first_done() -> bool:
            return (await job_of("first")).status is JobState.SUCCEEDED

        await until(first_done)
        wiro.finish(task_of("fourth"))
        _, err = await fourth.communicate()
        assert fourth.returncode == 0, err.decode()

        prompts = sorted(r.body["prompt"] for r in wiro.runs)
        assert prompts == ["first", "fourth", "second", "third"]  # each Run once
        jobs = await store.jobs.history(HistoryQuery(limit=10))
        assert sorted(j.prompt for j in jobs) == prompts
        assert all(j.status is JobState.SUCCEEDED for j in jobs)
        first = await store.jobs.get((await job_of("first")).id)
        assert first is not None and first.outputs  # the images the other process downloaded
    finally:
        await store.close()
