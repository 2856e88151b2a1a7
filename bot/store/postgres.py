"""PostgreSQL behind the small surface the repositories use of an `aiosqlite.Connection`.

The repositories were written for SQLite: `execute(sql, params)` (awaited, or used with
`async with`), cursors with `fetchone`/`fetchall`/`rowcount`/`lastrowid`, `commit`,
`executescript`. `PgConnection` offers the same over an asyncpg pool, so the same
repositories (and their SQL, `?` placeholders included) run on both. Each statement runs on
a pooled connection in its own transaction (`commit` has nothing left to do); `transaction()`
groups statements where they must commit together.

The few spellings that differ are translated here, once per distinct statement (cached):
`?` -> `$n`, `IS ?` -> `= $n` (or `IS NULL` for a None), `INSERT OR IGNORE` -> `ON CONFLICT DO
NOTHING`, LIKE -> ILIKE (SQLite's LIKE ignores ASCII case), SQLite's truncating
`CAST(... AS INTEGER)` -> FLOOR, and `RETURNING id` after inserts into the tables whose
new id callers read (`lastrowid`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Generator, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

import asyncpg

#: Tables whose new row's id a caller reads through `lastrowid`.
_ID_TABLES = frozenset({"jobs", "input_sets", "gallery_links"})
_INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:OR\s+(IGNORE|REPLACE)\s+)?INTO\s+(\w+)", re.I)
_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES)\b|\bRETURNING\b", re.I)
_STATUS_COUNT = re.compile(r"(\d+)$")
_CAST_INTEGER = re.compile(r"CAST\(([\w.\s/*+-]+?)\s+AS\s+INTEGER\)", re.I)

#: Inside `PgConnection.transaction()`: the pool and the connection that task's statements
#: share (per task: other tasks keep using the pool meanwhile).
_HELD: ContextVar[tuple[asyncpg.Pool, asyncpg.Connection] | None] = ContextVar(
    "wirobot_pg_held", default=None
)


def translate(sql: str) -> str:
    """SQLite's spelling of a statement in PostgreSQL's (see the module's docstring), for
    parameters none of which is None."""
    return translate_for(sql, frozenset())[0]


@functools.lru_cache(maxsize=2048)
def translate_for(sql: str, nulls: frozenset[int]) -> tuple[str, tuple[int, ...]]:
    """The statement for parameters whose positions in `nulls` are None, and the positions
    of the parameters it still binds. SQLite's `col IS ?` becomes `col = $n`, or `col IS
    NULL` for a None (PostgreSQL's IS NOT DISTINCT FROM would read no index)."""
    out: list[str] = []
    kept: list[int] = []
    position = -1
    i = 0
    while i < len(sql):
        ch = sql[i]
        if ch == "'":  # a string literal: copied as it is ('' stays inside it)
            end = i + 1
            while end < len(sql):
                if sql[end] == "'":
                    if sql[end + 1 : end + 2] == "'":
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1])
            i = end + 1
            continue
        if ch == "?":
            position += 1
            stripped = "".join(out).rstrip()
            negated = re.search(r"\bIS\s+NOT$", stripped, re.I)
            if negated or re.search(r"\bIS$", stripped, re.I):
                head = stripped[: -len("NOT")].rstrip() if negated else stripped
                head = head[: -len("IS")]
                if position in nulls:
                    out = [head, "IS NOT NULL" if negated else "IS NULL"]
                    i += 1
                    continue
                out = [head, "<> " if negated else "= "]
            kept.append(position)
            out.append(f"${len(kept)}")
        else:
            out.append(ch)
        i += 1
    text = "".join(out)
    text = re.sub(r"\bLIKE\b", "ILIKE", text)
    text = _CAST_INTEGER.sub(lambda m: f"FLOOR({m.group(1)})::bigint", text)
    insert = _INSERT_INTO.match(text)
    if insert:
        conflict, table = insert.group(1), insert.group(2)
        if conflict and conflict.upper() == "REPLACE":
            raise ValueError("INSERT OR REPLACE: spell it ON CONFLICT (...) DO UPDATE")
        text = _INSERT_INTO.sub(f"INSERT INTO {table}", text, count=1)
        tail = ""
        if conflict:
            tail += " ON CONFLICT DO NOTHING"
        if table.lower() in _ID_TABLES and not re.search(r"\bRETURNING\b", text, re.I):
            tail += " RETURNING id"
        text += tail
    return text, tuple(kept)


class PgCursor:
    """What a statement left: its rows (read at once), how many rows it changed, the new id."""

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount
        self.lastrowid: int | None = None
        if rows and "id" in rows[0] and len(rows) == 1:
            self.lastrowid = int(rows[0]["id"])

    async def fetchone(self) -> asyncpg.Record | None:
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    async def fetchall(self) -> list[asyncpg.Record]:
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    async def close(self) -> None:
        pass

    def __aiter__(self) -> AsyncIterator[asyncpg.Record]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[asyncpg.Record]:
        while (row := await self.fetchone()) is not None:
            yield row


class _Pending:
    """`execute`'s answer: awaited, or used with `async with`, like aiosqlite's."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self._cursor: PgCursor | None = None

    def __await__(self) -> Generator[Any, None, PgCursor]:
        return self._run().__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> PgCursor:
        self._cursor = await self._run()
        return self._cursor

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass


class PgConnection:
    """An asyncpg pool that reads like one aiosqlite connection (see the module docstring)."""

    dialect = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str | None = None) -> None:
        self.pool = pool
        #: Where it connects (for a connection of one's own: `bot.store.notices`).
        self.url = url

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Pending:
        values = tuple(parameters) if parameters is not None else ()
        nulls = frozenset(n for n, value in enumerate(values) if value is None)
        text, kept = translate_for(sql, nulls)
        args = tuple(values[n] for n in kept)
        return _Pending(lambda: self._execute(text, args))

    async def _execute(self, sql: str, args: Sequence[Any]) -> PgCursor:
        held = _HELD.get()
        if held is not None and held[0] is self.pool:
            return await _run(held[1], sql, args)
        async with self.pool.acquire() as conn:
            return await _run(conn, sql, args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many rows, in one transaction (no row may hold a None that an
        `IS ?` compares: each row would need its own spelling)."""
        text, kept = translate_for(sql, frozenset())
        batch = [tuple(row[n] for n in kept) for row in rows]
        held = _HELD.get()
        if held is not None and held[0] is self.pool:
            await held[1].executemany(text, batch)
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(text, batch)

    async def executescript(self, script: str) -> None:
        """Several statements, no parameters (`?` is not translated)."""
        async with self.pool.acquire() as conn:
            await conn.execute(script)

    async def commit(self) -> None:
        """Every statement has committed already (or commits with its `transaction()`)."""

    async def rollback(self) -> None:
        pass

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """This task's statements inside commit together, or not at all."""
        async with self.pool.acquire() as conn, conn.transaction():
            token = _HELD.set((self.pool, conn))
            try:
                yield conn
            finally:
                _HELD.reset(token)

    @asynccontextmanager
    async def custom_plans(self) -> AsyncIterator[None]:
        """This task's statements inside are planned for their own parameters. asyncpg
        prepares every statement, and after five runs PostgreSQL may keep one generic plan
        that knows neither the server nor the words: for a search, one that walks a whole
        server. Only for such statements: planning each time costs ~0.1 ms."""
        async with self.transaction() as conn:
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            yield

    async def close(self) -> None:
        await self.pool.close()


async def _run(conn: asyncpg.Connection, sql: str, args: Sequence[Any]) -> PgCursor:
    if _ROWS.search(sql):
        rows = await conn.fetch(sql, *args)
        return PgCursor(list(rows), len(rows))
    status = await conn.execute(sql, *args)
    found = _STATUS_COUNT.search(status or "")
    return PgCursor([], int(found.group(1)) if found else -1)


async def connect(url: str, *, min_size: int = 1, max_size: int = 10) -> PgConnection:
    """A pool on `url` (postgresql://), migrated."""
    from bot.store.database import migrate_postgres

    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size)
    conn = PgConnection(pool, url)
    try:
        await migrate_postgres(conn)
    except BaseException:
        await conn.close()
        raise
    return conn
