"""Wiring: from settings to a running engine, for the command line and the Discord bot alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from bot.catalog.catalog import Catalog
from bot.jobs.engine import JobEngine
from bot.metrics import Metrics
from bot.settings import ConfigError, Settings
from bot.store import Store
from bot.wiro.auth import Credentials
from bot.wiro.client import WiroClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    session: aiohttp.ClientSession
    store: Store
    catalog: Catalog
    client: WiroClient
    engine: JobEngine
    metrics: Metrics = field(default_factory=Metrics)


def build_client(
    settings: Settings, session: aiohttp.ClientSession, metrics: Metrics | None = None
) -> WiroClient:
    secret = settings.wiro.api_secret
    credentials = Credentials(
        settings.require_wiro_key().get_secret_value(),
        secret.get_secret_value() if secret is not None else None,
    )
    return WiroClient(
        session,
        credentials,
        base_url=settings.wiro.base_url,
        request_timeout=settings.wiro.request_timeout,
        observer=metrics.wiro_call if metrics is not None else None,
    )


@asynccontextmanager
async def open_runtime(settings: Settings, *, start_engine: bool = True) -> AsyncIterator[Runtime]:
    """Open the HTTP session and the database, load the catalog, start the engine; close all
    of it on the way out (unfinished jobs stay in the database and resume next time)."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        store = await Store.open(settings.database.path)
        stack.push_async_callback(store.close)
        metrics = Metrics()
        client = build_client(settings, session, metrics)
        catalog = Catalog.from_seeds()
        if settings.models.extra:
            problems = await catalog.load_extra(settings.models.extra, client, store.tools)
            for problem in problems:
                log.warning("extra model not loaded: %s", problem)
        if catalog.get(settings.models.default) is None:
            raise ConfigError(
                f"setting models.default (WIROBOT_MODELS__DEFAULT): unknown model "
                f"'{settings.models.default}'; known: {', '.join(m.slug for m in catalog.all())}"
            )
        engine = JobEngine(
            client=client,
            store=store,
            catalog=catalog,
            settings=settings.jobs,
            outputs_dir=settings.database.outputs_path,
            default_model=settings.models.default,
        )
        counting = asyncio.create_task(
            metrics.count_events(engine.subscribe()), name="wirobot-metrics"
        )
        stack.push_async_callback(_cancel, counting)
        if start_engine:
            await engine.start()
            stack.push_async_callback(engine.close)
        yield Runtime(settings, session, store, catalog, client, engine, metrics)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
