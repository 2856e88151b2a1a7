"""Shared fixtures. The Wiro stand-in is a real local server: see tests/wiro_standin.py."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bot.store import Store
from bot.wiro import Credentials, RetryPolicy, WiroClient
from tests.postgres_server import PostgresServer, PostgresUnavailable
from tests.wiro_standin import WiroStandIn


@pytest.fixture
async def wiro() -> AsyncIterator[WiroStandIn]:
    """A started WiroStandIn (signature mode, tasks take 0.05 s)."""
    async with WiroStandIn() as server:
        yield server


@pytest.fixture
async def wiro_client(wiro: WiroStandIn) -> AsyncIterator[WiroClient]:
    """A WiroClient talking to `wiro`, retrying without waiting."""
    async with aiohttp.ClientSession() as session:
        yield WiroClient(
            session,
            Credentials(wiro.api_key, wiro.api_secret),
            base_url=wiro.base_url,
            retry=RetryPolicy(base_delay=0),
        )


# -- PostgreSQL: one real server for the whole run, a fresh database per test ----------------

_TEMPLATE = "wirobot_template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A started PostgreSQL server (tests/postgres_server.py), with a migrated template
    database; the tests that use it are skipped, saying why, where none can start."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        server.stop()
        pytest.skip(f"PostgreSQL unavailable: {exc}")

    async def make_template() -> None:
        admin = await asyncpg.connect(server.url())
        try:
            await admin.execute(f"CREATE DATABASE {_TEMPLATE}")
        finally:
            await admin.close()
        store = await Store.open_url(server.url(_TEMPLATE))
        await store.close()

    try:
        asyncio.run(make_template())
        yield server
    finally:
        server.stop()


_databases = itertools.count(1)


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, migrated, empty PostgreSQL database for this test."""
    return await new_postgres_database(postgres_server, template=_TEMPLATE)


async def new_postgres_database(server: PostgresServer, *, template: str = "template0") -> str:
    """A new database on `server` (a copy of `template`), by URL."""
    name = f"wirobot_test_{next(_databases)}"
    admin = await asyncpg.connect(server.url())
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    finally:
        await admin.close()
    return server.url(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's store lives, once per backend: an SQLite file's path, or a fresh
    PostgreSQL database's URL (the store tests run on both)."""
    if request.param == "sqlite":
        return str(tmp_path / "wirobot.db")
    return str(request.getfixturevalue("postgres_url"))


async def open_store(database: str) -> Store:
    """`Store.open` or `Store.open_url`, by what `database` is."""
    if database.startswith(("postgresql://", "postgres://")):
        return await Store.open_url(database)
    return await Store.open(database)
