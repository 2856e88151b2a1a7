"""The SQLite connection and its numbered migrations (`migrations/NNNN_*.sql`)."""

from __future__ import annotations

import logging
import re
import sqlite3
from importlib import resources
from pathlib import Path

import aiosqlite

log = logging.getLogger(__name__)

#: Migrations that shrink the rows of an existing database: VACUUM after them, once.
_SHRINKING = ("_history.sql",)
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(number, file name, SQL) for every migration, in order."""
    found = []
    for entry in resources.files("bot.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    numbers = [number for number, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {numbers}")
    return found


async def connect(path: Path | str) -> aiosqlite.Connection:
    """Open (creating its folder) and migrate the database."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = await aiosqlite.connect(path)
    try:
        conn.row_factory = aiosqlite.Row
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        # Several processes (the bot and the CLI) may share the file: a busy machine can hold
        # the write lock for seconds; waiting beats failing a job.
        await conn.execute("PRAGMA busy_timeout = 30000")
        await migrate(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def migrate(conn: aiosqlite.Connection) -> int:
    """Apply the migrations newer than `PRAGMA user_version`; return the new version."""
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row else 0
    available = migrations()
    if current > len(available):
        raise RuntimeError(
            f"the database is at version {current}, newer than this wirobot knows "
            f"({len(available)}); upgrade wirobot"
        )
    existing = current > 0
    compact = False
    for number, name, sql in available[current:]:
        log.info("applying migration %s", name)
        # executescript commits first; the version bump rides in the same script.
        await conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
        current = number
        compact = compact or (existing and name.endswith(_SHRINKING))
    if compact:
        await _compact(conn)
    return current


async def _compact(conn: aiosqlite.Connection) -> None:
    """Give back the space an existing database no longer needs after a shrinking
    migration (the history one halves the rows, but shrunk rows leave half-empty pages
    behind). Best effort: VACUUM needs as much free disk as the database takes."""
    async with conn.execute("PRAGMA page_count") as cursor:
        pages = (await cursor.fetchone() or (0,))[0]
    if pages < 1000:
        return
    log.info("compacting the database after the migration (%d pages)", pages)
    try:
        await conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        log.warning("could not compact the database (it works as it is): %s", exc)
