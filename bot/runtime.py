"""Wiring: from settings to a running engine, for the command line and the Discord bot alike."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import aiohttp

from bot.catalog.catalog import Catalog
from bot.jobs.engine import JobEngine
from bot.jobs.retention import Retention
from bot.settings import ConfigError, Settings
from bot.store import Store
from bot.wiro.auth import Credentials
from bot.wiro.client import WiroClient
from bot.wiro.socket import WiroSocket

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    session: aiohttp.ClientSession
    store: Store
    catalog: Catalog
    client: WiroClient
    engine: JobEngine


def build_socket(settings: Settings) -> WiroSocket | None:
    """Wiro's socket for live progress, or None when `wiro.socket_url` is empty."""
    if not settings.wiro.socket_url:
        return None
    return WiroSocket(
        settings.wiro.socket_url,
        connect_timeout=settings.wiro.request_timeout,
        idle_timeout=settings.wiro.socket_idle_timeout,
    )


def build_client(settings: Settings, session: aiohttp.ClientSession) -> WiroClient:
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
    )


async def read_prices(engine: JobEngine, *, within: float = 15.0) -> None:
    """Read the prices a day old or never read (the kept ones serve meanwhile, and if Wiro
    cannot be reached); then again once a day, in the background."""
    try:
        async with asyncio.timeout(within):
            await engine.prices.refresh()
    except TimeoutError:
        log.warning("model prices not read from Wiro within %ss; the kept ones serve", within)
    engine.prices.start()


@asynccontextmanager
async def open_runtime(settings: Settings, *, start_engine: bool = True) -> AsyncIterator[Runtime]:
    """Open the HTTP session and the database, load the catalog, start the engine; close all
    of it on the way out (unfinished jobs stay in the database and resume next time)."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())
        store = await Store.open(settings.database.path)
        stack.push_async_callback(store.close)
        client = build_client(settings, session)
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
        socket = build_socket(settings)
        if socket is not None:
            stack.push_async_callback(socket.close)
        engine = JobEngine(
            client=client,
            socket=socket,
            store=store,
            catalog=catalog,
            settings=settings.jobs,
            outputs_dir=settings.database.outputs_path,
            default_model=settings.models.default,
        )
        if start_engine:
            await engine.start()
            stack.push_async_callback(engine.close)
            retention = Retention(
                store,
                settings.database.outputs_path,
                keep_days=settings.database.outputs_keep_days,
                max_bytes=int(settings.database.outputs_max_mb * 2**20),
            )
            retention.start()
            stack.push_async_callback(retention.close)
            await read_prices(engine)
        yield Runtime(settings, session, store, catalog, client, engine)
