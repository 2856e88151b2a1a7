"""Persistence: the only package with SQL in it."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import aiosqlite

from bot.store.batch import WriteBatcher
from bot.store.database import connect
from bot.store.gallery import GalleryRepository
from bot.store.guilds import GuildRepository, GuildSettings
from bot.store.jobs import HistoryQuery, JobRepository, NewJob, StoredFile
from bot.store.spend import SpendRepository
from bot.store.tools import ToolDetailCache

__all__ = ["GuildSettings", "HistoryQuery", "NewJob", "Store", "StoredFile"]


class Store:
    """One SQLite database: jobs, server settings, cached model details."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.writes = WriteBatcher(conn)
        self.jobs = JobRepository(conn, self.writes)
        self.guilds = GuildRepository(conn)
        self.tools = ToolDetailCache(conn)
        self.spend = SpendRepository(conn)
        self.gallery = GalleryRepository(conn)

    @classmethod
    async def open(cls, path: Path | str) -> Store:
        return cls(await connect(path))

    async def close(self) -> None:
        await self.writes.drain()
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
