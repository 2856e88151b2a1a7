"""Engine fixtures: a real SQLite file, the Wiro stand-in, a started JobEngine."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.catalog.catalog import Catalog
from bot.jobs import lost_runs
from bot.jobs.engine import JobEngine, JobRequest
from bot.jobs.events import EventKind, Subscription
from bot.jobs.job import Job, JobState, Requester
from bot.settings import JobSettings
from bot.store import Store
from bot.wiro import WiroClient

ALICE = Requester(user_id=1, guild_id=100, channel_id=1000)
BOB = Requester(user_id=2, guild_id=100, channel_id=1000)
MODEL = "ArsMachina/Ars-Niji-Style-v1"


def fast_settings(**changes: Any) -> JobSettings:
    """Polling in hundredths of seconds, so tests finish quickly."""
    values: dict[str, Any] = {
        "poll_min_interval": 0.01,
        "poll_max_interval": 0.05,
        "max_concurrent": 8,
        "max_concurrent_per_guild": 8,
        "max_concurrent_per_user": 8,
    }
    values.update(changes)
    return JobSettings(**values)


def request(
    prompt: str = "a lighthouse at dusk", who: Requester = ALICE, **options: object
) -> JobRequest:
    model = options.pop("model", MODEL)
    assert model is None or isinstance(model, str)
    return JobRequest(prompt=prompt, requester=who, model=model, options=dict(options))


@pytest.fixture(autouse=True)
def quick_lost_run_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for a lost Run's task at once and once more, not over seconds."""
    monkeypatch.setattr(lost_runs, "LOOKS", (0.0, 0.02))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "wirobot.db") as store:
        yield store


EngineFactory = Callable[..., Awaitable[JobEngine]]


@pytest.fixture
async def make_engine(
    wiro_client: WiroClient, store: Store, tmp_path: Path
) -> AsyncIterator[EngineFactory]:
    """Build and start engines on the same database; all are closed at the end."""
    engines: list[JobEngine] = []

    async def make(**settings: Any) -> JobEngine:
        engine = JobEngine(
            client=wiro_client,
            store=store,
            catalog=Catalog.from_seeds(),
            settings=fast_settings(**settings),
            outputs_dir=tmp_path / "outputs",
            default_model=MODEL,
            rng=random.Random(7),
        )
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


@pytest.fixture
async def engine(make_engine: EngineFactory) -> JobEngine:
    return await make_engine()


async def finished(events: Subscription, job_id: int, within: float = 10.0) -> Job:
    """The job as it was when its FINISHED event arrived."""
    async with asyncio.timeout(within):
        while True:
            event = await events.get()
            if event.job.id == job_id and event.kind is EventKind.FINISHED:
                return event.job


async def reaches(events: Subscription, job_id: int, state: JobState, within: float = 10.0) -> Job:
    async with asyncio.timeout(within):
        while True:
            event = await events.get()
            if event.job.id == job_id and event.job.status is state:
                return event.job
