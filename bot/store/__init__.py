"""Persistence: the only package with SQL in it."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import TracebackType

import aiosqlite

from bot.store.batch import WriteBatcher, open_direct
from bot.store.database import connect, connect_url, schema_version
from bot.store.gallery import GalleryRepository
from bot.store.guilds import GuildRepository, GuildSettings
from bot.store.jobs import (
    Claim,
    HistoryQuery,
    JobRepository,
    NewJob,
    PostingClaim,
    RunLimits,
    StoredFile,
)
from bot.store.notices import Notices
from bot.store.postgres import PgConnection
from bot.store.spend import SpendRepository
from bot.store.tools import ToolDetailCache
from bot.store.transfer import Copied, TransferError, copy_sqlite_to_postgres

__all__ = [
    "Claim",
    "GuildSettings",
    "HistoryQuery",
    "NewJob",
    "Notices",
    "PostingClaim",
    "RunLimits",
    "Store",
    "StoredFile",
]


class Store:
    """One database (SQLite, or PostgreSQL through `open_url`): jobs, server settings,
    cached model details."""

    def __init__(
        self, conn: aiosqlite.Connection, *, direct: sqlite3.Connection | None = None
    ) -> None:
        self._conn = conn
        # `direct`: SQLite's writes applied on the event loop (see bot/store/batch.py).
        self.writes = WriteBatcher(conn, direct=direct)
        self.jobs = JobRepository(conn, self.writes)
        self.guilds = GuildRepository(conn, self.writes)
        self.tools = ToolDetailCache(conn, self.writes)
        self.spend = SpendRepository(conn, self.writes)
        self.gallery = GalleryRepository(conn, self.writes)
        self._notices: Notices | None = None

    @classmethod
    async def open(cls, path: Path | str) -> Store:
        conn = await connect(path)
        try:
            return cls(conn, direct=open_direct(path))
        except BaseException:
            await conn.close()
            raise

    @classmethod
    async def open_url(cls, url: str, *, pool_size: int = 10) -> Store:
        """PostgreSQL at a postgresql:// URL (a pool of `pool_size` connections), migrated."""
        return cls(await connect_url(url, pool_size=pool_size))

    async def version(self) -> int:
        """The schema version: the number of the last migration applied."""
        return await schema_version(self._conn)

    async def copy_from_sqlite(self, source: Path) -> list[Copied]:
        """Copy the SQLite database at `source` into this one (PostgreSQL, empty)."""
        if not isinstance(self._conn, PgConnection):
            raise TransferError("the target must be PostgreSQL (database.url)")
        return await copy_sqlite_to_postgres(source, self._conn)

    def notices(self) -> Notices | None:
        """Notices from the other processes sharing this database (PostgreSQL); None when
        there can be none to hear (SQLite: the engine looks again now and then instead)."""
        url = getattr(self._conn, "url", None)
        if not isinstance(self._conn, PgConnection) or url is None:
            return None
        if self._notices is None:
            self._notices = Notices(url)
        return self._notices

    async def close(self) -> None:
        if self._notices is not None:
            await self._notices.close()
        try:
            await self.writes.close()
        finally:
            await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
