"""SQL for per-server settings and per-model server defaults."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields, replace
from typing import Any

import aiosqlite

from bot.store.batch import WriteBatcher
from bot.store.recent import Recent


@dataclass(frozen=True, slots=True)
class GuildSettings:
    """A server's choices. None means: the bot's configured value applies."""

    guild_id: int
    default_model: str | None = None
    disabled_models: frozenset[str] = field(default_factory=frozenset)
    max_samples: int | None = None
    max_steps: int | None = None
    max_concurrent_per_user: int | None = None
    max_jobs_per_user_per_day: int | None = None
    #: Allow NSFW-capable models outside age-restricted channels.
    nsfw_anywhere: bool = False

    def allows(self, model: str) -> bool:
        return model.lower() not in self.disabled_models

    def with_changes(self, **changes: Any) -> GuildSettings:
        return replace(self, **changes)


_COLUMNS = tuple(f.name for f in fields(GuildSettings))


class GuildRepository:
    def __init__(self, conn: aiosqlite.Connection, writes: WriteBatcher | None = None) -> None:
        self._conn = conn
        # Writes go through the batcher: it retries "database is locked" from other processes.
        self._writes = writes or WriteBatcher(conn)
        self._recent: Recent[int, GuildSettings] = Recent()
        self._recent_defaults: Recent[tuple[int, str], dict[str, Any]] = Recent()

    async def recent(self, guild_id: int) -> GuildSettings:
        """A server's settings as read at most `RECENT` seconds ago (this process's own
        changes at once): for the hot paths, /imagine and autocomplete."""
        return await self._recent.read(guild_id, lambda: self.get(guild_id))

    async def recent_model_defaults(self, guild_id: int, model: str) -> dict[str, Any]:
        """`model_defaults`, as read at most `RECENT` seconds ago (a copy)."""
        defaults = await self._recent_defaults.read(
            (guild_id, model), lambda: self.model_defaults(guild_id, model)
        )
        return dict(defaults)

    async def get(self, guild_id: int) -> GuildSettings:
        async with self._conn.execute(
            "SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return GuildSettings(guild_id=guild_id)
        return GuildSettings(
            guild_id=guild_id,
            default_model=row["default_model"],
            disabled_models=frozenset(json.loads(row["disabled_models"])),
            max_samples=row["max_samples"],
            max_steps=row["max_steps"],
            max_concurrent_per_user=row["max_concurrent_per_user"],
            max_jobs_per_user_per_day=row["max_jobs_per_user_per_day"],
            nsfw_anywhere=bool(row["nsfw_anywhere"]),
        )

    async def save(self, settings: GuildSettings) -> None:
        values: list[Any] = []
        for name in _COLUMNS:
            value = getattr(settings, name)
            if name == "disabled_models":
                value = json.dumps(sorted(value))
            elif isinstance(value, bool):
                value = int(value)
            values.append(value)
        columns = ", ".join((*_COLUMNS, "updated_at"))
        placeholders = ", ".join("?" for _ in range(len(_COLUMNS) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*_COLUMNS[1:], "updated_at"))
        await self._writes.write(
            (
                f"INSERT INTO guild_settings ({columns}) VALUES ({placeholders})"
                f" ON CONFLICT (guild_id) DO UPDATE SET {updates}",
                (*values, time.time()),
            )
        )
        self._recent.forget(settings.guild_id)  # after the commit: no read keeps the old

    async def model_defaults(self, guild_id: int, model: str) -> dict[str, Any]:
        async with self._conn.execute(
            "SELECT option, value FROM model_defaults WHERE guild_id = ? AND model = ?"
            " ORDER BY option",
            (guild_id, model),
        ) as cursor:
            rows = await cursor.fetchall()
        return {row["option"]: json.loads(row["value"]) for row in rows}

    async def all_model_defaults(self, guild_id: int) -> dict[str, dict[str, Any]]:
        async with self._conn.execute(
            "SELECT model, option, value FROM model_defaults WHERE guild_id = ?"
            " ORDER BY model, option",
            (guild_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        result: dict[str, dict[str, Any]] = {}
        for row in rows:
            result.setdefault(row["model"], {})[row["option"]] = json.loads(row["value"])
        return result

    async def set_model_default(self, guild_id: int, model: str, option: str, value: Any) -> None:
        await self._writes.write(
            (
                "INSERT INTO model_defaults (guild_id, model, option, value) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guild_id, model, option) DO UPDATE SET value = excluded.value",
                (guild_id, model, option, json.dumps(value)),
            )
        )
        self._recent_defaults.forget((guild_id, model))

    async def clear_model_defaults(
        self, guild_id: int, model: str, option: str | None = None
    ) -> int:
        """Remove one default, or all of a model's; returns how many were removed."""
        if option is None:
            written = await self._writes.write(
                ("DELETE FROM model_defaults WHERE guild_id = ? AND model = ?", (guild_id, model))
            )
        else:
            written = await self._writes.write(
                (
                    "DELETE FROM model_defaults WHERE guild_id = ? AND model = ? AND option = ?",
                    (guild_id, model, option),
                )
            )
        self._recent_defaults.forget((guild_id, model))
        return written.rowcount
