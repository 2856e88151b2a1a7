"""SQL for cached Tool/Detail answers (models added in the config by slug)."""

from __future__ import annotations

import json
import time
from typing import Any

import aiosqlite


class ToolDetailCache:
    """Implements bot.catalog's CatalogCache protocol."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

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
        await self._conn.execute(
            "INSERT INTO tool_details (slug, detail, fetched_at) VALUES (?, ?, ?)"
            " ON CONFLICT (slug) DO UPDATE SET detail = excluded.detail,"
            " fetched_at = excluded.fetched_at",
            (slug.lower(), json.dumps(detail), time.time()),
        )
        await self._conn.commit()
