"""Group commits: many small writes, one transaction.

Each `write` is one or more statements that belong together (a job's outputs and its final
fields). Writes that arrive while a commit is under way wait for it and then go in one
transaction and one commit; so under a burst the writes per commit grow instead of the
queue, and when the bot is quiet a write goes at once. Each caller's `write` returns only
once its own write is committed: "stored before announced" still holds.

A write that fails is rolled back alone and raises in its own caller; the others still
commit. The batch first runs without a savepoint per write; only when one of its writes
fails is it rolled back and run again, each write in its own savepoint.

SQLite, on a file: the batches are applied on the event loop's own thread, through a
connection of their own (`open_direct`). On aiosqlite's thread every statement gave up the
interpreter lock and, with the loop busy, waited up to the 5 ms switch interval to get it
back: at a thousand jobs finishing a second the commits fell seconds behind. On the loop a
statement costs microseconds: the connection never waits for a lock (`busy_timeout` 0: a
locked database is tried again later, asynchronously), never syncs to disk on commit (WAL,
`synchronous = NORMAL`) and never checkpoints (`wal_autocheckpoint` 0: the checkpoints run
on aiosqlite's thread, see `_Checkpoints`); and a batch is at most `DIRECT_BATCH` writes.

An in-memory database (one connection only) keeps the batches on aiosqlite's thread. On
PostgreSQL the batch is one transaction on one pooled connection, a savepoint (asyncpg's
nested transaction) per write.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiosqlite

if TYPE_CHECKING:
    from bot.store.postgres import PgConnection

log = logging.getLogger(__name__)

Statement = tuple[str, Sequence[Any]]

#: Most writes applied on the event loop in one go (a few milliseconds' work).
DIRECT_BATCH = 200

#: Seconds between checkpoints while batches are applied on the loop.
CHECKPOINT_EVERY = 1.0


def _file_of(conn: sqlite3.Connection) -> str:
    """The file a connection has open as its main database."""
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def open_direct(path: Path | str) -> sqlite3.Connection | None:
    """The connection the batches of the SQLite file at `path` are applied through, on the
    event loop's thread (see the module's docstring); None for an in-memory database."""
    if str(path) == ":memory:":
        return None
    # isolation_level None: the batcher says BEGIN IMMEDIATE and COMMIT itself.
    direct = sqlite3.connect(path, isolation_level=None, cached_statements=256)
    try:
        direct.execute("PRAGMA synchronous = NORMAL")
        direct.execute("PRAGMA foreign_keys = ON")
        direct.execute("PRAGMA busy_timeout = 0")
        direct.execute("PRAGMA wal_autocheckpoint = 0")
    except BaseException:
        direct.close()
        raise
    return direct


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
    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        direct: sqlite3.Connection | None = None,
        max_batch: int = 2_000,
    ) -> None:
        self._conn = conn
        self._direct = direct
        self._max_batch = min(max_batch, DIRECT_BATCH) if direct is not None else max_batch
        self._checkpoints = _Checkpoints(_file_of(direct)) if direct is not None else None
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

    async def checkpointed(self) -> None:
        """Wait until the checkpoints due so far have run (tests and benchmarks)."""
        if self._checkpoints is not None:
            await self._checkpoints.wait()

    async def close(self) -> None:
        """Drain, then close the loop's own connection (the caller closes `conn`, which
        checkpoints the database)."""
        await self.drain()
        if self._checkpoints is not None:
            await self._checkpoints.stop()
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    async def _flush(self) -> None:
        try:
            while self._pending:
                if self._direct is not None:
                    # Applied on this thread: let the loop run between two batches.
                    await asyncio.sleep(0)
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
                if self._direct is not None:
                    outcomes = _apply_direct(self._direct, units)
                    assert self._checkpoints is not None
                    self._checkpoints.after_commit()
                    return outcomes
                # aiosqlite's own queue to its thread: the whole batch is one hop.
                on_thread: list[Written | Exception] = await self._conn._execute(  # type: ignore[no-untyped-call]
                    _apply, self._conn._conn, units
                )
                return on_thread
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
    """On aiosqlite's thread: the batch in one transaction, one commit."""
    if not conn.in_transaction:
        conn.execute("BEGIN")
    try:
        outcomes = _run(conn, units)
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return outcomes


def _apply_direct(
    conn: sqlite3.Connection, units: list[tuple[Statement, ...]]
) -> list[Written | Exception]:
    """On the event loop: the batch in one transaction, one commit. The write lock is taken
    first, without waiting ("database is locked" at once: the caller tries again later)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes = _run(conn, units)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return outcomes


def _run(conn: sqlite3.Connection, units: list[tuple[Statement, ...]]) -> list[Written | Exception]:
    """Every unit, inside the open transaction: all at once while none fails (a savepoint
    each would double the statements), else again from the start, each in a savepoint."""
    conn.execute("SAVEPOINT batch")
    try:
        outcomes: list[Written | Exception] = [_unit(conn, statements) for statements in units]
    except Exception as exc:
        conn.execute("ROLLBACK TO batch")
        conn.execute("RELEASE batch")
        if _locked(exc):
            raise  # the whole batch is rolled back and tried again
        return [_unit_alone(conn, statements) for statements in units]
    conn.execute("RELEASE batch")
    return outcomes


def _unit(conn: sqlite3.Connection, statements: tuple[Statement, ...]) -> Written:
    cursor = None
    for sql, params in statements:
        cursor = conn.execute(sql, params)
    return Written(cursor.lastrowid, cursor.rowcount) if cursor else Written(None, 0)


def _unit_alone(conn: sqlite3.Connection, statements: tuple[Statement, ...]) -> Written | Exception:
    """One unit in its own savepoint: if it fails, it alone is rolled back."""
    conn.execute("SAVEPOINT write")
    try:
        written = _unit(conn, statements)
    except Exception as exc:
        if _locked(exc):
            raise
        conn.execute("ROLLBACK TO write")
        conn.execute("RELEASE write")
        return exc
    conn.execute("RELEASE write")
    return written


class _Checkpoints:
    """Checkpoints for batches applied on the loop: a passive one (it waits for no one) at
    most every `CHECKPOINT_EVERY` seconds while batches commit, and one after the last. A
    checkpoint syncs the database file to disk: on the loop it would stall everything, so
    it runs on a thread, through a connection of its own (SQLite refuses to checkpoint on a
    connection with a statement under way, as aiosqlite's often has)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._last = float("-inf")
        self._behind = False
        self._stopped = False
        self._running: asyncio.Task[None] | None = None
        #: The checkpoint running on a thread: it runs on even if its task is cancelled.
        self._on_thread: asyncio.Future[None] | None = None

    def after_commit(self) -> None:
        self._behind = True
        if self._running is None and not self._stopped:
            self._running = asyncio.create_task(self._keep_up(), name="wirobot-checkpoints")

    async def _keep_up(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._behind and not self._stopped:
                wait = self._last + CHECKPOINT_EVERY - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._behind = False
                self._last = loop.time()
                self._on_thread = loop.run_in_executor(None, self._checkpoint)
                # Shielded: cancelling this task must not mark it finished while it runs.
                await asyncio.shield(self._on_thread)
        except sqlite3.Error as exc:
            log.info("database checkpoint skipped: %s", exc)
        finally:
            self._running = None

    def _checkpoint(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, check_same_thread=False)
        self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    async def wait(self) -> None:
        while self._running is not None:
            await asyncio.shield(self._running)

    async def stop(self) -> None:
        """Closing the database checkpoints it anyway: no need to wait for the next."""
        self._stopped = True
        if self._running is not None:
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
        if self._on_thread is not None:
            await asyncio.wait([self._on_thread])  # never close under a running checkpoint
        if self._conn is not None:
            self._conn.close()
            self._conn = None


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
