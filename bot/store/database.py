"""The database connection and its numbered migrations (`migrations/NNNN_*.sql`).

One numbered set serves both backends: a file in `migrations/postgresql/` with the same
number replaces the common one on PostgreSQL, where its SQL must differ. SQLite keeps its
version in `PRAGMA user_version`, PostgreSQL in the `schema_version` table.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from contextlib import AbstractAsyncContextManager, nullcontext
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, cast

import aiosqlite

if TYPE_CHECKING:
    from bot.store.postgres import PgConnection

#: What the repositories are given: an aiosqlite connection, or a `PgConnection` that offers
#: the same surface over PostgreSQL (typed as the former so repositories need one spelling).
Connection = aiosqlite.Connection

log = logging.getLogger(__name__)

#: Migrations that shrink an existing database (rows, indexes): VACUUM after them, once.
_SHRINKING = ("_history.sql", "_finished_tokens.sql", "_past_costs.sql", "_member_windows.sql")
_MIGRATION_NAME = re.compile(r"^(\d{4})_[\w-]+\.sql$")


def migrations(dialect: str = "sqlite") -> list[tuple[int, str, str]]:
    """(number, file name, SQL) for every migration, in order; with `dialect`
    "postgresql", its own files replace the common ones of the same number."""
    folder = resources.files("bot.store").joinpath("migrations")
    by_number: dict[int, tuple[int, str, str]] = {}
    folders = [folder] + ([folder.joinpath("postgresql")] if dialect == "postgresql" else [])
    for where in folders:
        seen: dict[int, str] = {}
        for entry in where.iterdir():
            match = _MIGRATION_NAME.match(entry.name)
            if match:
                number = int(match.group(1))
                if number in seen:  # two branches took one number: which runs is not a choice
                    raise RuntimeError(
                        f"two migrations numbered {number}: {seen[number]}, {entry.name}"
                    )
                seen[number] = entry.name
                by_number[number] = (number, entry.name, entry.read_text(encoding="utf-8"))
    found = sorted(by_number.values())
    numbers = [number for number, _, _ in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {numbers}")
    return found


async def connect_url(url: str, *, pool_size: int = 10) -> Connection:
    """Open and migrate the PostgreSQL database at a postgresql:// URL (a pool)."""
    from bot.store import postgres

    return cast(Connection, await postgres.connect(url, max_size=pool_size))


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


async def schema_version(conn: Connection) -> int:
    """The number of the last migration applied to the database."""
    sql = "SELECT max(version) FROM schema_version" if is_postgres(conn) else "PRAGMA user_version"
    async with conn.execute(sql) as cursor:
        row = await cursor.fetchone()
    return int(row[0] or 0) if row else 0


def transaction(conn: Connection) -> AbstractAsyncContextManager[object]:
    """Statements that must commit together. SQLite: aiosqlite's own transaction, which the
    last statement's `commit()` ends; PostgreSQL: a transaction on one pooled connection."""
    if is_postgres(conn):
        return cast("PgConnection", conn).transaction()
    return nullcontext()


def is_postgres(conn: Connection) -> bool:
    """Whether a repository's connection is PostgreSQL (for the SQL that must differ)."""
    return getattr(conn, "dialect", "sqlite") == "postgresql"


_VERSION_LOCK = 0x77697230  # "wir0": one process migrates at a time


async def migrate_postgres(conn: PgConnection) -> int:
    """Apply the migrations newer than `schema_version`, each in a transaction with its
    version; processes starting together wait for each other on an advisory lock."""
    available = migrations("postgresql")
    async with conn.pool.acquire() as db, db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock($1)", _VERSION_LOCK)
        await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await db.fetchval("SELECT max(version) FROM schema_version") or 0
        if current > len(available):
            raise RuntimeError(
                f"the database is at version {current}, newer than this wirobot knows "
                f"({len(available)}); upgrade wirobot"
            )
        for number, name, sql in available[current:]:
            log.info("applying migration %s (postgresql)", name)
            await db.execute(sql)
            await db.execute("DELETE FROM schema_version")
            await db.execute("INSERT INTO schema_version (version) VALUES ($1)", number)
            current = number
    return int(current)


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
