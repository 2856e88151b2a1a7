"""SQL for cached Tool/Detail answers (models added in the config by slug)."""

from __future__ import annotations

import json
import time
from typing import Any

import aiosqlite

from bot.store.batch import WriteBatcher


class ToolDetailCache:
    """Implements bot.catalog's CatalogCache protocol."""

    def __init__(self, conn: aiosqlite.Connection, writes: WriteBatcher | None = None) -> None:
        self._conn = conn
        self._writes = writes or WriteBatcher(conn)  # retries "database is locked"

    async def get_tool_detail(self, slug: str) -> dict[str, Any] | None:
        async with self._conn.execute(
            "SELECT detail FROM tool_details WHERE slug = ?", (slug.lower(),)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        detail: dict[str, Any] = json.loads(row[0])
        return detail

    async def put_tool_detail(self, slug: str, detail: dict[str, Any]) -> None:
        await self._writes.write(
            (
                "INSERT INTO tool_details (slug, detail, fetched_at) VALUES (?, ?, ?)"
                " ON CONFLICT (slug) DO UPDATE SET detail = excluded.detail,"
                " fetched_at = excluded.fetched_at",
                (slug.lower(), json.dumps(detail), time.time()),
            )
        )
