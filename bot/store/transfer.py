"""Moving an SQLite database into an empty PostgreSQL one (`wirobot migrate --from-sqlite`).

Every table both databases have is copied, rows as they are (ids kept), in one PostgreSQL
transaction: the copy lands whole or not at all. The identity sequences are then moved past
the copied ids, so new jobs continue the numbering. The SQLite file is migrated to the
current version first, exactly as a start of the bot would; nothing else in it changes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg

from bot.store.database import connect
from bot.store.postgres import PgConnection

log = logging.getLogger(__name__)

#: Tables others refer to go first (jobs point to input_sets, outputs to jobs).
_FIRST = ("input_sets", "jobs", "outputs")
_BATCH = 5000


class TransferError(Exception):
    """Why the copy was refused; nothing was written."""


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    rows: int


async def copy_sqlite_to_postgres(source: Path, target: PgConnection) -> list[Copied]:
    """Copy every row of the SQLite database at `source` into `target` (migrated, empty)."""
    if not await asyncio.to_thread(source.is_file):
        raise TransferError("no such file")
    try:
        lite = await connect(source)
    except sqlite3.Error as exc:
        raise TransferError(f"not a usable SQLite database ({exc})") from None
    try:
        async with target.pool.acquire() as pg:
            tables = await _tables(lite, pg)
            copied = []
            async with pg.transaction():
                for table in tables:
                    if await pg.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):
                        raise TransferError(
                            f"the PostgreSQL database is not empty (table {table} has rows); "
                            "copy into a new, empty database"
                        )
                # GIN indexes (the prompt words, 0007) are built at the end in one pass: kept
                # up to date row by row they more than double the copy's time.
                later = await pg.fetch(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname ="
                    " current_schema() AND tablename = ANY($1::text[])"
                    " AND indexdef LIKE '% USING gin %'",
                    tables,
                )
                for index in later:
                    await pg.execute(f'DROP INDEX "{index["indexname"]}"')
                for table in tables:
                    copied.append(Copied(table, await _copy(lite, pg, table)))
                for index in later:
                    await pg.execute(index["indexdef"])
                await _move_sequences(pg)
            # The planner's statistics and the visibility map (index-only counts) for the
            # rows just copied, now rather than at autovacuum's first visit.
            await pg.execute("VACUUM ANALYZE")
    finally:
        await lite.close()
    return copied


async def _tables(lite: aiosqlite.Connection, pg: asyncpg.Connection) -> list[str]:
    ours = {
        row["table_name"]
        for row in await pg.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            " AND table_name <> 'schema_version'"
        )
    }
    async with lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%'"
        " AND name NOT LIKE 'sqlite_%'"
    ) as cursor:
        theirs = {row[0] for row in await cursor.fetchall()}
    # SQLite-only tables (FTS5's shadow tables) have no place in PostgreSQL; guild_days and
    # guild_model_days are rebuilt by PostgreSQL's own triggers as the jobs are copied.
    theirs = {
        name
        for name in theirs
        if not name.startswith("jobs_search") and name not in ("guild_days", "guild_model_days")
    }
    missing = sorted(theirs - ours)
    if missing:
        raise TransferError(
            f"PostgreSQL has no table {', '.join(missing)}: is this wirobot older than the "
            "one that wrote the SQLite file?"
        )
    shared = theirs & ours
    return [t for t in _FIRST if t in shared] + sorted(shared - set(_FIRST))


async def _copy(lite: aiosqlite.Connection, pg: asyncpg.Connection, table: str) -> int:
    kinds = {
        row["column_name"]: row["data_type"]
        for row in await pg.fetch(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = $1",
            table,
        )
    }
    async with lite.execute(f'PRAGMA table_info("{table}")') as cursor:
        columns = [row[1] for row in await cursor.fetchall() if row[1] in kinds]
    converters = [_converter(kinds[c]) for c in columns]
    names = ", ".join(f'"{c}"' for c in columns)
    total = 0
    async with lite.execute(f'SELECT {names} FROM "{table}"') as cursor:
        while batch := await cursor.fetchmany(_BATCH):
            records = [tuple(f(v) for f, v in zip(converters, row, strict=True)) for row in batch]
            await pg.copy_records_to_table(table, records=records, columns=columns)
            total += len(records)
    log.info("copied %d rows of %s", total, table)
    return total


def _converter(kind: str) -> Any:
    """SQLite keeps what it was given; PostgreSQL's columns take one type each."""
    if kind in ("bigint", "integer", "smallint"):
        return lambda v: v if v is None or isinstance(v, int) else int(v)
    if kind in ("double precision", "real", "numeric"):
        return lambda v: v if v is None else float(v)
    if kind == "text":
        return lambda v: v if v is None or isinstance(v, str) else str(v)
    return lambda v: v


async def _move_sequences(pg: asyncpg.Connection) -> None:
    for row in await pg.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
    ):
        table, column = row["table_name"], row["column_name"]
        await pg.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'),"
            f' COALESCE((SELECT max("{column}") FROM "{table}"), 0) + 1, false)'
        )
