"""SQL for the web gallery: its signing secret, the links it handed out, member names, and
the read-only queries behind its pages."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import aiosqlite

from bot.jobs.job import Job
from bot.money import from_pico
from bot.store.batch import WriteBatcher
from bot.store.database import is_postgres
from bot.store.jobs import (
    _JOB_COLUMNS,
    _WITH_INPUTS,
    JobRepository,
    _in_channels,
    _prompt_contains,
)

_SIGNING_KEY = "gallery_signing_key"


@dataclass(frozen=True, slots=True)
class Grant:
    """What one /gallery link lets its holder see: a snapshot of the member's access."""

    id: int
    guild_id: int
    user_id: int
    #: Channels the member could see when they asked; None: every channel (administrator).
    channels: frozenset[int] | None
    #: The age-restricted channels among them (their jobs are NSFW).
    nsfw_channels: frozenset[int]
    #: Asked in an age-restricted channel: NSFW images are shown unblurred.
    from_nsfw: bool
    #: Manage Server when asked: the spend page is shown.
    admin: bool
    #: The member's roles when asked (to re-check channel access against today's overwrites).
    roles: frozenset[int]
    created_at: float
    expires_at: float

    def may_see(self, job: Job) -> bool:
        if job.guild_id != self.guild_id:
            return False
        return self.channels is None or job.channel_id in self.channels


@dataclass(frozen=True, slots=True)
class GalleryQuery:
    guild_id: int
    channels: frozenset[int] | None
    model: str | None = None
    user_id: int | None = None
    search: str | None = None
    #: Keyset: only jobs with an id below this one (the last of the previous page).
    before: int | None = None
    limit: int = 24


@dataclass(frozen=True, slots=True)
class DaySpend:
    day: str
    jobs: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class ModelSpend:
    model: str
    jobs: int
    cost: Decimal


class GalleryRepository:
    def __init__(self, conn: aiosqlite.Connection, writes: WriteBatcher | None = None) -> None:
        self._conn = conn
        self._writes = writes or WriteBatcher(conn)  # retries "database is locked"
        self._jobs = JobRepository(conn, self._writes)

    # -- the signing secret ------------------------------------------------------------------

    async def signing_key(self) -> bytes:
        """The links' HMAC key: made once, on first use, and kept."""
        await self._writes.write(
            (
                "INSERT OR IGNORE INTO web_secrets (name, value, created_at) VALUES (?, ?, ?)",
                (_SIGNING_KEY, secrets.token_bytes(32), time.time()),
            )
        )
        async with self._conn.execute(
            "SELECT value FROM web_secrets WHERE name = ?", (_SIGNING_KEY,)
        ) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return bytes(row[0])

    # -- links ---------------------------------------------------------------------------------

    async def create_grant(
        self,
        *,
        guild_id: int,
        user_id: int,
        channels: frozenset[int] | None,
        nsfw_channels: frozenset[int],
        from_nsfw: bool,
        admin: bool,
        roles: frozenset[int] = frozenset(),
        lifetime: float,
        now: float | None = None,
    ) -> Grant:
        now = time.time() if now is None else now
        written = await self._writes.write(
            # Expired links are useless: drop them whenever a new one is made.
            ("DELETE FROM gallery_links WHERE expires_at < ?", (now,)),
            (
                "INSERT INTO gallery_links (guild_id, user_id, channels, nsfw_channels, from_nsfw,"
                " admin, roles, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    guild_id,
                    user_id,
                    None if channels is None else json.dumps(sorted(channels)),
                    json.dumps(sorted(nsfw_channels)),
                    int(from_nsfw),
                    int(admin),
                    json.dumps(sorted(roles)),
                    now,
                    now + lifetime,
                ),
            ),
        )
        assert written.lastrowid is not None
        grant = await self.grant(written.lastrowid)
        assert grant is not None
        return grant

    async def grant(self, grant_id: int) -> Grant | None:
        async with self._conn.execute(
            "SELECT * FROM gallery_links WHERE id = ?", (grant_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        channels = row["channels"]
        return Grant(
            id=row["id"],
            guild_id=row["guild_id"],
            user_id=row["user_id"],
            channels=None if channels is None else frozenset(json.loads(channels)),
            nsfw_channels=frozenset(json.loads(row["nsfw_channels"])),
            from_nsfw=bool(row["from_nsfw"]),
            admin=bool(row["admin"]),
            roles=frozenset(json.loads(row["roles"])),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
        )

    # -- member names --------------------------------------------------------------------------

    async def remember_name(self, guild_id: int, user_id: int, name: str) -> None:
        await self._writes.write(
            (
                "INSERT INTO member_names (guild_id, user_id, name, seen_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guild_id, user_id) DO UPDATE SET name = excluded.name,"
                " seen_at = excluded.seen_at",
                (guild_id, user_id, name[:100], time.time()),
            )
        )

    async def names(self, guild_id: int, user_ids: Iterable[int | None]) -> dict[int, str]:
        ids = sorted({uid for uid in user_ids if uid is not None})
        if not ids:
            return {}
        async with self._conn.execute(
            f"SELECT user_id, name FROM member_names WHERE guild_id = ?"
            f" AND user_id IN ({', '.join('?' for _ in ids)})",
            (guild_id, *ids),
        ) as cursor:
            rows = await cursor.fetchall()
        return {int(row[0]): str(row[1]) for row in rows}

    async def recent_members(self, guild_id: int, limit: int = 200) -> list[tuple[int, str]]:
        """(id, name) of the members seen most recently, by name: the member filter's choices."""
        by_name = "lower(name)" if is_postgres(self._conn) else "name COLLATE NOCASE"
        async with self._conn.execute(
            "SELECT user_id, name FROM (SELECT user_id, name FROM member_names"
            f" WHERE guild_id = ? ORDER BY seen_at DESC LIMIT ?) AS recent ORDER BY {by_name}",
            (guild_id, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [(int(row[0]), str(row[1])) for row in rows]

    # -- pages ---------------------------------------------------------------------------------

    async def jobs(self, query: GalleryQuery) -> list[Job]:
        """Succeeded jobs with their outputs, newest first (the order of the server's
        created_at index, so a page reads only its own rows). A prompt search goes through
        the history's search (FTS5 on SQLite, full text on PostgreSQL): a rare word in a large
        server reads the jobs that have it, not the whole server."""
        match = await self._jobs.search_match(
            query.search, guild_id=query.guild_id, user_id=query.user_id, model=query.model
        )
        before: float | None = None
        if query.before is not None:
            async with self._conn.execute(
                "SELECT created_at FROM jobs WHERE id = ?", (query.before,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return []
            before = row[0]
        sql, params = _page_sql(query, match, before)
        async with self._jobs.planned(match is not None), self._conn.execute(sql, params) as cursor:
            rows = await cursor.fetchall()
        return await self._jobs.with_outputs(rows)

    async def job(self, job_id: int) -> Job | None:
        return await self._jobs.get(job_id)

    # -- money ---------------------------------------------------------------------------------
    # Spend is read only here so the money branch can switch it to exact Decimal in one place.

    async def spend_by_day(self, guild_id: int, *, days: int = 30) -> list[DaySpend]:
        """The last `days` days' jobs and spend per UTC day, newest first: the per-day totals
        the store keeps (`guild_days`), and only the oldest day, which the period cuts
        through, counted from its jobs (a month of a large server is not read job by job)."""
        since = time.time() - days * 86400
        cut = int(since // 86400)
        async with self._conn.execute(
            "SELECT day, jobs, cost_pico FROM guild_days WHERE guild = ? AND day > ?"
            " AND jobs > 0 ORDER BY day DESC",
            (guild_id, cut),
        ) as cursor:
            rows = [(int(r[0]), int(r[1]), int(r[2])) for r in await cursor.fetchall()]
        async with self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost_pico), 0) FROM jobs"
            " WHERE guild_id = ? AND created_at >= ? AND created_at < ?",
            (guild_id, since, (cut + 1) * 86400.0),
        ) as cursor:
            part = await cursor.fetchone()
        if part is not None and int(part[0]) > 0:
            rows.append((cut, int(part[0]), int(part[1])))
        return [DaySpend(_day(day), jobs, from_pico(pico)) for day, jobs, pico in rows]

    async def spend_by_model(self, guild_id: int, *, days: int = 30) -> list[ModelSpend]:
        """The last `days` days' jobs and spend per model, the most spent first: as
        `spend_by_day`, from the per-day totals (`guild_model_days`) and the cut day's jobs."""
        since = time.time() - days * 86400
        cut = int(since // 86400)
        totals: dict[str, tuple[int, int]] = {}
        for sql, params in (
            (
                "SELECT model, SUM(jobs), SUM(cost_pico) FROM guild_model_days"
                " WHERE guild = ? AND day > ? GROUP BY model",
                (guild_id, cut),
            ),
            (
                "SELECT model, COUNT(*), COALESCE(SUM(cost_pico), 0) FROM jobs"
                " WHERE guild_id = ? AND created_at >= ? AND created_at < ? GROUP BY model",
                (guild_id, since, (cut + 1) * 86400.0),
            ),
        ):
            async with self._conn.execute(sql, params) as cursor:
                for model, jobs, pico in await cursor.fetchall():
                    had = totals.get(str(model), (0, 0))
                    totals[str(model)] = (had[0] + int(jobs), had[1] + int(pico or 0))
        ordered = sorted(
            ((model, jobs, pico) for model, (jobs, pico) in totals.items() if jobs > 0),
            key=lambda row: (-row[2], row[0]),
        )
        return [ModelSpend(model, jobs, from_pico(pico)) for model, jobs, pico in ordered]

    async def budget(self, guild_id: int) -> Decimal | None:
        """The server's monthly budget, when one is set (`/settings budget`)."""
        async with self._conn.execute(
            "SELECT server_monthly_pico FROM guild_budgets WHERE guild_id = ?", (guild_id,)
        ) as cursor:
            row = await cursor.fetchone()
        return None if row is None or row[0] is None else from_pico(int(row[0]))

    # -- metrics -------------------------------------------------------------------------------

    async def unfinished_counts(self) -> list[tuple[str, str, int]]:
        """(state, model, jobs) for jobs not yet final (the partial index keeps this cheap)."""
        async with self._conn.execute(
            "SELECT status, model, COUNT(*) FROM jobs WHERE status NOT IN"
            " ('succeeded', 'failed', 'cancelled', 'timed_out') GROUP BY status, model"
        ) as cursor:
            rows = await cursor.fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def ping(self) -> None:
        async with self._conn.execute("SELECT 1") as cursor:
            await cursor.fetchone()


def _page_sql(
    query: GalleryQuery, match: tuple[str, str, list[Any]] | None, before: float | None
) -> tuple[str, tuple[Any, ...]]:
    """A page's SELECT: `match` is the search's (source, condition, parameters) from
    `JobRepository.search_match`; `before` the created_at of the job the page starts below."""
    where, params = _filter(query)
    source = "jobs"
    if match is not None:
        source, clause, values = match
        where = f"{clause} AND {where}"
        params = [*values, *params]
    if before is not None:
        # A range on created_at (the index), then ties broken by id.
        where += " AND jobs.created_at <= ? AND NOT (jobs.created_at = ? AND jobs.id >= ?)"
        params.extend([before, before, query.before])
    sql = (
        f"SELECT {_JOB_COLUMNS} FROM {source} {_WITH_INPUTS} WHERE {where}"
        " ORDER BY jobs.created_at DESC, jobs.id DESC LIMIT ?"
    )
    return sql, (*params, query.limit)


def _filter(query: GalleryQuery) -> tuple[str, list[Any]]:
    clauses = ["jobs.guild_id = ?", "jobs.status = 'succeeded'"]
    params: list[Any] = [query.guild_id]
    if query.channels is not None:
        clauses.append(_in_channels(query.channels, params))
    if query.model is not None:
        clauses.append("jobs.model = ?")
        params.append(query.model)
    if query.user_id is not None:
        clauses.append("jobs.user_id = ?")
        params.append(query.user_id)
    if query.search:
        clauses.append(_prompt_contains(query.search, params))
    return " AND ".join(clauses), params


def _day(day: int) -> str:
    """A `guild_days` day (days since 1970-01-01, UTC) as YYYY-MM-DD."""
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()
