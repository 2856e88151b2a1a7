"""Persistence: the only package with SQL in it."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import aiosqlite

from bot.store.database import connect
from bot.store.gallery import GalleryRepository
from bot.store.guilds import GuildRepository, GuildSettings
from bot.store.jobs import HistoryQuery, JobRepository, NewJob
from bot.store.tools import ToolDetailCache

__all__ = ["GuildSettings", "HistoryQuery", "NewJob", "Store"]


class Store:
    """One SQLite database: jobs, server settings, cached model details."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.jobs = JobRepository(conn)
        self.guilds = GuildRepository(conn)
        self.tools = ToolDetailCache(conn)
        self.gallery = GalleryRepository(conn)

    @classmethod
    async def open(cls, path: Path | str) -> Store:
        return cls(await connect(path))

    async def close(self) -> None:
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
