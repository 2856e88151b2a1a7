"""SQL for jobs and their outputs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosqlite

from bot.jobs.job import FINAL_STATES, ErrorKind, Job, JobState, Output, Requester

#: Columns a caller may change through `update`; guards the f-string below.
_UPDATABLE = frozenset(
    {
        "status",
        "wiro_status",
        "task_id",
        "task_token",
        "cancel_requested",
        "submitted_at",
        "started_at",
        "finished_at",
        "elapsed_seconds",
        "cost",
        "error",
        "error_kind",
        "status_message_id",
        "interaction_token",
        "interaction_at",
        "result_message_id",
        "posted_at",
    }
)

_FINAL = tuple(state.value for state in FINAL_STATES)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class NewJob:
    model: str
    prompt: str
    inputs: dict[str, Any]
    seed: int
    requester: Requester
    created_at: float
    status: JobState = JobState.CREATED
    #: The process that handles it, and until when its claim holds (see `claim`).
    owner: str | None = None
    lease_until: float | None = None


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    guild_id: int | None = None
    user_id: int | None = None
    model: str | None = None
    search: str | None = None
    limit: int = 10
    offset: int = 0
    #: Only jobs started in these channels (None: any channel; empty: none).
    channel_ids: frozenset[int] | None = None


class JobRepository:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._write_lock = asyncio.Lock()

    async def _write(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run one write and commit it; roll back on error. Writes of this connection take
        turns (a rollback must not undo another coroutine's write). With several processes
        on one file, "database is locked" can come at once, busy_timeout unused (a read of
        this connection holds a stale snapshot); it passes, so the write is tried again. A
        failed write left open would block every later one."""
        async with self._write_lock:
            for attempt in range(60):
                try:
                    result = await work()
                    await self._conn.commit()
                    return result
                except sqlite3.OperationalError as exc:
                    await self._conn.rollback()
                    if "locked" not in str(exc) or attempt == 59:
                        raise
                except BaseException:
                    await self._conn.rollback()
                    raise
                await asyncio.sleep(min(0.005 * 2**attempt, 0.25))
        raise AssertionError("unreachable")  # pragma: no cover

    async def create(self, new: NewJob) -> Job:
        r = new.requester

        async def insert() -> aiosqlite.Cursor:
            return await self._conn.execute(
                "INSERT INTO jobs (source, guild_id, channel_id, user_id, model, prompt, inputs,"
                " seed, status, created_at, owner, lease_until)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.source,
                    r.guild_id,
                    r.channel_id,
                    r.user_id,
                    new.model,
                    new.prompt,
                    json.dumps(new.inputs),
                    new.seed,
                    new.status.value,
                    new.created_at,
                    new.owner,
                    new.lease_until,
                ),
            )

        cursor = await self._write(insert)
        job_id = cursor.lastrowid
        assert job_id is not None
        return Job(
            id=job_id,
            model=new.model,
            prompt=new.prompt,
            inputs=dict(new.inputs),
            seed=new.seed,
            status=new.status,
            requester=r,
            created_at=new.created_at,
        )

    async def update(self, job_id: int, **fields: Any) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not fields:
            return
        await self._write(lambda: self._update(job_id, fields))

    async def _update(self, job_id: int, fields: dict[str, Any]) -> None:
        values = [_to_sql(v) for v in fields.values()]
        assignments = ", ".join(f"{name} = ?" for name in fields)
        await self._conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values, job_id))

    async def claim_status(self, job_id: int, expected: JobState, new: JobState) -> bool:
        """Move a job from `expected` to `new` only if it is still there (compare-and-set)."""
        cursor = await self._write(
            lambda: self._conn.execute(
                "UPDATE jobs SET status = ? WHERE id = ? AND status = ?",
                (new.value, job_id, expected.value),
            )
        )
        return cursor.rowcount == 1

    # -- claims: one job, one owner ---------------------------------------------------------

    async def claim(self, job_id: int, owner: str, *, now: float, until: float) -> bool:
        """Take an unfinished job for `owner` if nobody holds it (or its lease has passed)."""
        placeholders = ", ".join("?" for _ in _FINAL)
        cursor = await self._write(
            lambda: self._conn.execute(
                "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ?"
                f" AND status NOT IN ({placeholders})"
                " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
                (owner, until, job_id, *_FINAL, owner, now),
            )
        )
        return cursor.rowcount == 1

    async def claim_run(
        self, job_id: int, owner: str, *, submitted_at: float, until: float
    ) -> bool:
        """Mark a waiting job submitted and held by `owner`, only if it is still waiting and
        no other live process holds it (compare-and-set): the one step before a Run, so no
        job is ever Run twice."""
        cursor = await self._write(
            lambda: self._conn.execute(
                "UPDATE jobs SET status = 'submitted', submitted_at = ?, owner = ?,"
                " lease_until = ? WHERE id = ? AND status = 'waiting'"
                " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
                (submitted_at, owner, until, job_id, owner, submitted_at),
            )
        )
        return cursor.rowcount == 1

    async def renew(self, owner: str, *, until: float) -> set[int]:
        """Extend the lease of every unfinished job `owner` holds; returns their ids."""
        placeholders = ", ".join("?" for _ in _FINAL)

        async def update() -> set[int]:
            async with self._conn.execute(
                "UPDATE jobs SET lease_until = ? WHERE owner = ?"
                f" AND status NOT IN ({placeholders}) RETURNING id",
                (until, owner, *_FINAL),
            ) as cursor:
                return {int(row[0]) for row in await cursor.fetchall()}

        return await self._write(update)

    async def release(self, owner: str) -> None:
        """Give up every unfinished job `owner` holds (a clean shutdown): another process
        may take them at once."""
        placeholders = ", ".join("?" for _ in _FINAL)
        await self._write(
            lambda: self._conn.execute(
                "UPDATE jobs SET owner = NULL, lease_until = NULL"
                f" WHERE owner = ? AND status NOT IN ({placeholders})",
                (owner, *_FINAL),
            )
        )

    async def unclaimed(self, *, now: float) -> list[Job]:
        """Unfinished jobs nobody holds: never claimed, released, or their lease has passed."""
        placeholders = ", ".join("?" for _ in _FINAL)
        async with self._conn.execute(
            f"SELECT * FROM jobs WHERE status NOT IN ({placeholders})"
            " AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?) ORDER BY id",
            (*_FINAL, now),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_job(row) for row in rows]

    async def known_task_ids(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these Wiro task ids already belong to a job."""
        ids = list(task_ids)
        if not ids:
            return set()
        async with self._conn.execute(
            f"SELECT task_id FROM jobs WHERE task_id IN ({', '.join('?' for _ in ids)})", ids
        ) as cursor:
            rows = await cursor.fetchall()
        return {str(row[0]) for row in rows}

    async def get(self, job_id: int) -> Job | None:
        async with self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        job = _job(row)
        job.outputs = await self.outputs(job_id)
        return job

    async def unfinished(self) -> list[Job]:
        placeholders = ", ".join("?" for _ in _FINAL)
        async with self._conn.execute(
            f"SELECT * FROM jobs WHERE status NOT IN ({placeholders}) ORDER BY id", _FINAL
        ) as cursor:
            rows = await cursor.fetchall()
        return [_job(row) for row in rows]

    async def unposted(self) -> list[Job]:
        """Finished Discord jobs whose result was never posted (the bot stopped in between)."""
        placeholders = ", ".join("?" for _ in _FINAL)
        async with self._conn.execute(
            f"SELECT * FROM jobs WHERE status IN ({placeholders}) AND posted_at IS NULL"
            " AND source = 'discord' ORDER BY id",
            _FINAL,
        ) as cursor:
            rows = await cursor.fetchall()
        jobs = [_job(row) for row in rows]
        for job in jobs:
            job.outputs = await self.outputs(job.id)
        return jobs

    async def history(self, query: HistoryQuery) -> list[Job]:
        where, params = _history_filter(query)
        async with self._conn.execute(
            f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
            (*params, query.limit, query.offset),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_job(row) for row in rows]

    async def count_history(self, query: HistoryQuery) -> int:
        where, params = _history_filter(query)
        async with self._conn.execute(f"SELECT COUNT(*) FROM jobs {where}", params) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def count_started_since(self, *, user_id: int, guild_id: int | None, since: float) -> int:
        """Jobs a member started since a time, cancelled-before-Wiro ones not counted."""
        async with self._conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND guild_id IS ? AND created_at >= ?"
            " AND NOT (status = 'cancelled' AND task_id IS NULL)",
            (user_id, guild_id, since),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def oldest_started_since(
        self, *, user_id: int, guild_id: int | None, since: float
    ) -> float | None:
        async with self._conn.execute(
            "SELECT MIN(created_at) FROM jobs WHERE user_id = ? AND guild_id IS ?"
            " AND created_at >= ? AND NOT (status = 'cancelled' AND task_id IS NULL)",
            (user_id, guild_id, since),
        ) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def spend(self, *, guild_id: int | None, since: float = 0.0) -> tuple[int, float]:
        """(jobs, total cost in USD) for a server since a time."""
        async with self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM jobs WHERE guild_id IS ?"
            " AND created_at >= ?",
            (guild_id, since),
        ) as cursor:
            row = await cursor.fetchone()
        return (int(row[0]), float(row[1])) if row else (0, 0.0)

    async def typical_durations(self, per_model: int = 20) -> dict[str, float]:
        """Median seconds from submission to finish of recent successful jobs, per model."""
        async with self._conn.execute(
            "SELECT model, finished_at - submitted_at FROM ("
            " SELECT model, finished_at, submitted_at, ROW_NUMBER() OVER"
            " (PARTITION BY model ORDER BY id DESC) AS n FROM jobs"
            " WHERE status = 'succeeded' AND submitted_at IS NOT NULL AND finished_at IS NOT NULL"
            ") WHERE n <= ?",
            (per_model,),
        ) as cursor:
            rows = await cursor.fetchall()
        samples: dict[str, list[float]] = {}
        for model, seconds in rows:
            if seconds is not None and seconds > 0:
                samples.setdefault(model, []).append(float(seconds))
        return {model: sorted(v)[len(v) // 2] for model, v in samples.items()}

    async def finish(self, job_id: int, outputs: Iterable[Output], **fields: Any) -> None:
        """Store a job's outputs and its final fields in one transaction."""
        rows = [
            (job_id, o.position, o.name, o.content_type, o.size, o.url, o.path, o.width, o.height)
            for o in outputs
        ]

        async def store() -> None:
            if rows:
                # One multi-row INSERT: executemany shares sqlite3's statement cache unsafely
                # under load ("bad parameter or other API misuse").
                placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
                await self._conn.execute(
                    "INSERT OR REPLACE INTO outputs (job_id, position, name, content_type, size,"
                    f" url, path, width, height) VALUES {placeholders}",
                    [value for row in rows for value in row],
                )
            if fields:
                await self._update(job_id, fields)

        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        await self._write(store)

    async def outputs(self, job_id: int) -> list[Output]:
        async with self._conn.execute(
            "SELECT * FROM outputs WHERE job_id = ? ORDER BY position", (job_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Output(
                position=row["position"],
                name=row["name"],
                content_type=row["content_type"],
                size=row["size"],
                url=row["url"],
                path=row["path"],
                width=row["width"],
                height=row["height"],
            )
            for row in rows
        ]


def _history_filter(query: HistoryQuery) -> tuple[str, tuple[Any, ...]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("guild_id", query.guild_id),
        ("user_id", query.user_id),
        ("model", query.model),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if query.channel_ids is not None:
        if query.channel_ids:
            ids = sorted(query.channel_ids)
            clauses.append(f"channel_id IN ({', '.join('?' for _ in ids)})")
            params.extend(ids)
        else:
            clauses.append("0")
    if query.search:
        escaped = query.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("prompt LIKE ? ESCAPE '\\'")
        params.append(f"%{escaped}%")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return where, tuple(params)


def _to_sql(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (JobState, ErrorKind)):
        return value.value
    return value


def _job(row: aiosqlite.Row) -> Job:
    return Job(
        id=row["id"],
        model=row["model"],
        prompt=row["prompt"],
        inputs=json.loads(row["inputs"]),
        seed=row["seed"],
        status=JobState(row["status"]),
        requester=Requester(
            user_id=row["user_id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            source=row["source"],
        ),
        created_at=row["created_at"],
        wiro_status=row["wiro_status"],
        task_id=row["task_id"],
        task_token=row["task_token"],
        cancel_requested=bool(row["cancel_requested"]),
        submitted_at=row["submitted_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        elapsed_seconds=row["elapsed_seconds"],
        cost=row["cost"],
        error=row["error"],
        error_kind=ErrorKind(row["error_kind"]) if row["error_kind"] else None,
        status_message_id=row["status_message_id"],
        interaction_token=row["interaction_token"],
        interaction_at=row["interaction_at"],
        result_message_id=row["result_message_id"],
        posted_at=row["posted_at"],
    )
