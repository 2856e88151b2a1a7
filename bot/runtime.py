"""Wiring: from settings to a running engine, for the command line and the Discord bot alike."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from bot.catalog.catalog import Catalog
from bot.jobs.engine import JobEngine
from bot.jobs.file_writer import ProcessFileWriter
from bot.jobs.retention import Retention
from bot.metrics import Metrics
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
    metrics: Metrics = field(default_factory=Metrics)


def build_socket(settings: Settings) -> WiroSocket | None:
    """Wiro's socket for live progress, or None when `wiro.socket_url` is empty."""
    if not settings.wiro.socket_url:
        return None
    return WiroSocket(
        settings.wiro.socket_url,
        connect_timeout=settings.wiro.request_timeout,
        idle_timeout=settings.wiro.socket_idle_timeout,
    )


def build_client(
    settings: Settings,
    session: aiohttp.ClientSession,
    metrics: Metrics | None = None,
    files: aiohttp.ClientSession | None = None,
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
        files=files,
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
        # Outputs come from Wiro's file server: connections of their own (see WiroClient).
        files = await stack.enter_async_context(aiohttp.ClientSession())
        store = await open_store(settings)
        stack.push_async_callback(store.close)
        metrics = Metrics()
        client = build_client(settings, session, metrics, files)
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
        # Images are written by a helper process, off the event loop (bot/jobs/file_writer.py).
        # The engine closes it; so does the stack, for an engine never started (idempotent).
        file_writer = ProcessFileWriter()
        stack.push_async_callback(file_writer.close)
        engine = JobEngine(
            client=client,
            socket=socket,
            store=store,
            catalog=catalog,
            settings=settings.jobs,
            outputs_dir=settings.database.outputs_path,
            default_model=settings.models.default,
            on_follow=metrics.followed_by,
            file_writer=file_writer,
        )
        counting = asyncio.create_task(
            metrics.count_events(engine.subscribe()), name="wirobot-metrics"
        )
        stack.push_async_callback(_cancel, counting)
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
        yield Runtime(settings, session, store, catalog, client, engine, metrics)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- start-up checks: one line naming the file and what to do, the file left untouched --------

_DB_SETTING = "database.path (WIROBOT_DATABASE__PATH)"
_OUTPUTS_SETTING = "database.outputs_dir (WIROBOT_DATABASE__OUTPUTS_DIR)"
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_storage(settings: Settings, *, create: bool = True) -> None:
    """The database file and the images folder can be used; ConfigError in one line if not.

    Run before anything is opened (and before the bot logs in to Discord), so a bad path
    stops the start with words, and a file that is not ours is never written to. With
    `create=False` (`wirobot check`) missing folders are not made, only found makeable.
    """
    path = settings.database.path
    if str(path) != ":memory:" and settings.database.url is None:
        _check_database_file(path, create)
    _check_folder(settings.database.outputs_path, _OUTPUTS_SETTING, create=create)


_URL_SETTING = "database.url (WIROBOT_DATABASE__URL)"


async def open_store(settings: Settings) -> Store:
    """`Store.open` after `check_storage` (PostgreSQL with `database.url`); the database's
    own refusals become a ConfigError (the URL's password masked)."""
    check_storage(settings)
    if settings.database.url is not None:
        return await _open_postgres(settings)
    path = settings.database.path
    try:
        return await Store.open(path)
    except sqlite3.Error as exc:
        raise ConfigError(
            f"{_DB_SETTING}: cannot use {path}: {exc}. Check the file and its folder are "
            "writable, or point the setting at another file."
        ) from None


async def _open_postgres(settings: Settings) -> Store:
    assert settings.database.url is not None
    shown = settings.database.shown_url
    try:
        return await Store.open_url(
            settings.database.url.get_secret_value(), pool_size=settings.database.pool_size
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc).replace(settings.database.url.get_secret_value(), str(shown))
        raise ConfigError(
            f"{_URL_SETTING}: cannot use {shown}: {reason or type(exc).__name__}. Check the "
            "server runs, the database exists and the user may use it."
        ) from None


def _check_database_file(path: Path, create: bool) -> None:
    _check_folder(path.parent, _DB_SETTING, for_file=path, create=create)
    if path.is_dir():
        raise ConfigError(f"{_DB_SETTING}: {path} is a folder; give a file name inside it.")
    if not path.exists():
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise ConfigError(f"{_DB_SETTING}: cannot read {path}: {_reason(exc)}.") from None
    if header and header != _SQLITE_HEADER:
        raise ConfigError(
            f"{_DB_SETTING}: {path} is not an SQLite database; it was left as it is. "
            "Point the setting at another file, or move that one away."
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(
            f"{_DB_SETTING}: {path} is read-only for this user; make it writable "
            f"(chown or chmod), or point the setting at another file."
        )


def _check_folder(
    folder: Path, setting: str, *, for_file: Path | None = None, create: bool = True
) -> None:
    what = f"the folder for {for_file}" if for_file else f"the folder {folder}"
    if not create:
        while not folder.exists() and folder.parent != folder:
            folder = folder.parent  # the nearest folder that exists must let us make the rest
        if not folder.is_dir():
            raise ConfigError(f"{setting}: cannot create {what}: {folder} is a file.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{setting}: cannot create {what}: {folder} is a file.") from None
    except OSError as exc:
        raise ConfigError(
            f"{setting}: cannot create {what}: {_reason(exc)}. "
            "Create it, or point the setting at a writable place."
        ) from None
    # SQLite writes a journal beside the database, and images go in the folder itself.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{setting}: {what} is not writable for this user ({folder}); make it writable, "
            "or point the setting at a writable place."
        )


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
