"""Group commits: many small writes, one transaction.

Each `write` is one or more statements that belong together (a job's outputs and its final
fields). Writes that arrive while the database thread is busy wait for it and then go in one
transaction, one thread hop and one commit; so under a burst the writes per commit grow
instead of the queue, and when the bot is quiet a write goes at once. Each caller's `write`
returns only once its own write is committed: "stored before announced" still holds.

Every write runs inside its own savepoint: one that fails is rolled back alone and raises in
its own caller; the others still commit. On PostgreSQL the batch is one transaction on one
pooled connection, a savepoint (asyncpg's nested transaction) per write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import aiosqlite

if TYPE_CHECKING:
    from bot.store.postgres import PgConnection

Statement = tuple[str, Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Written:
    """What SQLite said about a write's last statement."""

    lastrowid: int | None
    rowcount: int


@dataclass(slots=True)
class _Write:
    statements: tuple[Statement, ...]
    done: asyncio.Future[Written]


class WriteBatcher:
    def __init__(self, conn: aiosqlite.Connection, *, max_batch: int = 2_000) -> None:
        self._conn = conn
        self._max_batch = max_batch
        self._pending: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        #: Counters for benchmarks: writes and the commits they took.
        self.writes = 0
        self.commits = 0

    async def write(self, *statements: Statement) -> Written:
        """Run the statements in one savepoint of the next group commit; return once it is
        committed. A caller cancelled meanwhile does not undo its write."""
        done: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(statements, done))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name="wirobot-store-writes")
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            done.add_done_callback(_forget)  # nobody is left to hear how it went
            raise

    async def drain(self) -> None:
        """Wait until every write asked for so far is committed (or failed)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                units = [write.statements for write in batch]
                try:
                    outcomes = await self._apply_retrying(units)
                except Exception as exc:  # the commit itself failed: nothing was stored
                    for write in batch:
                        if not write.done.done():
                            write.done.set_exception(exc)
                    continue
                self.writes += len(batch)
                self.commits += 1
                for write, outcome in zip(batch, outcomes, strict=True):
                    if write.done.done():
                        continue
                    if isinstance(outcome, BaseException):
                        write.done.set_exception(outcome)
                    else:
                        write.done.set_result(outcome)
        finally:
            self._flusher = None


    async def _apply_retrying(
        self, units: list[tuple[Statement, ...]]
    ) -> list[Written | Exception]:
        """One group commit. With other processes on the file, "database is locked" can come
        at once (busy_timeout unused) while a read of this connection holds an old snapshot;
        it passes, so the whole batch (rolled back) is tried again, for a few seconds."""
        if getattr(self._conn, "dialect", "sqlite") == "postgresql":
            return await _apply_postgres(self._conn, units)
        for attempt in range(_LOCKED_TRIES):
            try:
                # aiosqlite's own queue to its thread: the whole batch is one hop.
                outcomes: list[Written | Exception] = await self._conn._execute(  # type: ignore[no-untyped-call]
                    _apply, self._conn._conn, units
                )
                return outcomes
            except sqlite3.OperationalError as exc:
                if not _locked(exc) or attempt == _LOCKED_TRIES - 1:
                    raise
            await asyncio.sleep(min(0.005 * 2**attempt, 0.25))
        raise AssertionError("unreachable")  # pragma: no cover


_LOCKED_TRIES = 60


def _locked(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def _forget(done: asyncio.Future[Written]) -> None:
    if not done.cancelled():
        done.exception()


def _apply(
    conn: sqlite3.Connection, units: list[tuple[Statement, ...]]
) -> list[Written | Exception]:
    """On the database thread: every unit in its own savepoint, then one commit."""
    outcomes: list[Written | Exception] = []
    if not conn.in_transaction:
        conn.execute("BEGIN")
    try:
        for statements in units:
            conn.execute("SAVEPOINT write")
            try:
                cursor = None
                for sql, params in statements:
                    cursor = conn.execute(sql, params)
            except Exception as exc:
                if _locked(exc):
                    raise  # the whole batch is rolled back and tried again
                conn.execute("ROLLBACK TO write")
                conn.execute("RELEASE write")
                outcomes.append(exc)
                continue
            conn.execute("RELEASE write")
            outcomes.append(
                Written(cursor.lastrowid, cursor.rowcount) if cursor else Written(None, 0)
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return outcomes


async def _apply_postgres(
    conn: aiosqlite.Connection, units: list[tuple[Statement, ...]]
) -> list[Written | Exception]:
    """PostgreSQL: the batch in one transaction on one pooled connection, every unit in its
    own savepoint (the statements keep SQLite's spelling: the connection translates them)."""
    pg = cast("PgConnection", conn)
    outcomes: list[Written | Exception] = []
    async with pg.transaction() as db:
        for statements in units:
            try:
                async with db.transaction():  # nested: a savepoint
                    cursor = None
                    for sql, params in statements:
                        cursor = await pg.execute(sql, params)
            except Exception as exc:
                outcomes.append(exc)
                continue
            outcomes.append(
                Written(cursor.lastrowid, cursor.rowcount) if cursor else Written(None, 0)
            )
    return outcomes
