"""SQL for jobs and their outputs."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

import aiosqlite

from bot.jobs.job import FINAL_STATES, ErrorKind, Job, JobState, Output, Requester
from bot.money import ZERO, from_pico, parse_usd, to_pico
from bot.store.batch import Statement, WriteBatcher
from bot.store.database import is_postgres, transaction
from bot.store.windows import member_since

if TYPE_CHECKING:
    from bot.store.postgres import PgConnection

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
# Spelled out, not bound as parameters: SQLite uses a partial index only when the query's
# condition names the same constants as the index's (migrations 0001 and 0002).
_FINAL_SQL = "('succeeded', 'failed', 'cancelled', 'timed_out')"
assert set(_FINAL) == set(re.findall(r"'(\w+)'", _FINAL_SQL))

#: A server's jobs and their cost in the part of a day that a "since" cuts through.
_SPEND_PART_SQL = (
    "SELECT COUNT(*), coalesce(SUM(cost_pico), 0) FROM jobs"
    " WHERE guild_id IS ? AND created_at >= ? AND created_at < ?"
)

#: A job's row with its shared inputs (see `_stored_inputs`).
_JOB_COLUMNS = "jobs.*, input_sets.inputs AS set_inputs"
_WITH_INPUTS = "LEFT JOIN input_sets ON input_sets.id = jobs.inputs_set"
_SELECT_JOBS = f"SELECT {_JOB_COLUMNS} FROM jobs {_WITH_INPUTS}"

_INPUT_SETS_CACHED = 10_000

#: The advisory lock processes sharing PostgreSQL take turns on before a Run.
_RUN_LOCK = 0x77697231

#: The channel on which processes sharing PostgreSQL hear of each other's changes (see
#: `bot.store.notices`): "freed" when a job left Wiro's slots (finished, or back in line),
#: "cancel <id>" when someone asked to cancel a job, "released" when a process stopping
#: gave up its jobs.
NOTICES = "wirobot_jobs"
_NOTIFY = f"SELECT pg_notify('{NOTICES}', ?)"
#: The states in which a job holds a slot at Wiro (the engine's `book.ACTIVE`), spelled out
#: for the partial index `jobs_unfinished` (migration 0001): a count reads the active rows only.
_ACTIVE_SQL = f"status NOT IN {_FINAL_SQL} AND status IN ('submitted', 'queued', 'running')"

#: Typical durations are learned from this many most recent jobs (a rowid range, no scan).
_RECENT_JOBS = 2000
#: Job ids bound in one `IN (...)` (well under SQLite's and PostgreSQL's parameter limits).
_IDS_PER_QUERY = 500
#: A search's words: what FTS5's unicode61 tokenizer keeps (letters and digits).
_WORD = re.compile(r"[^\W_]+")
#: PostgreSQL's prompt search: the expression migration 0007 indexes (GIN), word for word:
#: the prompt's words and, as in FTS5's index, "g <guild>" and "u <member>" (with a space, so
#: no prompt can make one), so that a search within a server or a member intersects inside
#: the index. The query's second part (a tsquery of those words, or '' for none) is built by
#: `_pg_where`.
_PG_MATCH = (
    "(to_tsvector('english', jobs.prompt) || array_to_tsvector(ARRAY["
    "'g ' || coalesce(jobs.guild_id, 0), 'u ' || coalesce(jobs.user_id, 0)]))"
    " @@ (plainto_tsquery('english', ?) && CAST(CAST(? AS text) AS tsquery))"
)


#: PostgreSQL: a server's search first reads this many of its newest jobs (see `_windowed`).
_PG_WINDOW = 200


def _windowed(query: HistoryQuery, pg: _Words | None) -> bool:
    """Whether a PostgreSQL search's page tries the server's newest jobs first. A common
    word fills a page among them at once, where reading all its matches in a large server
    through the words index costs tens of ms; a rare one leaves the page short, and only
    then the words index is asked (the planner cannot tell the two apart)."""
    return pg is not None and pg.narrow and query.guild_id is not None and bool(query.search)


def _pg_where(guild_id: int | None, user_id: int | None) -> str:
    """The server's and member's words of `_PG_MATCH` as a tsquery ('' matches all)."""
    terms = []
    if guild_id is not None:
        terms.append(f"'g {int(guild_id)}'")
    if user_id is not None:
        terms.append(f"'u {int(user_id)}'")
    return " & ".join(terms)


#: Searches whose words text search keeps (True) or drops as stop words (False), by words.
_LEXEMES: dict[str, bool] = {}


@dataclass(frozen=True, slots=True)
class _Words:
    """PostgreSQL: whether a search's words narrow through text search."""

    narrow: bool


@dataclass(frozen=True, slots=True)
class PostingClaim:
    """This process may post a job's result."""

    #: An earlier poster claimed it and never recorded the post: it may be out already.
    interrupted: bool


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
    #: The price foreseen (None: unknown); counts against budgets until the cost is known.
    estimate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class RunLimits:
    """Jobs at Wiro at once over every process sharing the database: in all, for the job's
    server, and for its member on that server."""

    everywhere: int
    per_guild: int
    per_member: int


class Claim(Enum):
    """What `claim_run_within` found."""

    RUN = "run"  # the job is ours to Run now
    GONE = "gone"  # no longer waiting, or another live process holds it
    BUSY = "busy"  # another process is writing its row this moment: try again shortly
    FULL = "full"  # every process's jobs at Wiro fill RunLimits.everywhere
    GUILD_FULL = "guild_full"  # ... the server's share
    MEMBER_FULL = "member_full"  # ... the member's share


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An output still on disk, as retention sees it."""

    job_id: int
    position: int
    path: str
    size: int
    created_at: float  # the job's


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    guild_id: int | None = None
    user_id: int | None = None
    model: str | None = None
    search: str | None = None
    limit: int = 10
    #: Keyset paging: only jobs older than this id, or only jobs newer than this id (the
    #: page right before it). Either way the jobs come newest first.
    before_id: int | None = None
    after_id: int | None = None
    #: Only jobs started in these channels (None: any channel; empty: none).
    channel_ids: frozenset[int] | None = None


class JobRepository:
    def __init__(self, conn: aiosqlite.Connection, writes: WriteBatcher | None = None) -> None:
        self._conn = conn
        #: Whether several processes may share the database (PostgreSQL).
        self.shared = is_postgres(conn)
        # Job writes go through group commits: thousands of jobs, a few commits a second.
        self._writes = writes or WriteBatcher(conn)
        self._input_sets: dict[str, int] = {}  # stored inputs -> input_sets.id

    async def create(self, new: NewJob) -> Job:
        r = new.requester
        stored = _stored_inputs(new.inputs, new.prompt, new.seed)
        known = self._input_sets.get(stored)
        # A new set of inputs is stored in the same write as the job: one write a job.
        statements: list[Statement] = []
        if known is None:
            statements.append(("INSERT OR IGNORE INTO input_sets (inputs) VALUES (?)", (stored,)))
        inputs_set = "?" if known is not None else "(SELECT id FROM input_sets WHERE inputs = ?)"
        statements.append(
            (
                "INSERT INTO jobs (source, guild_id, channel_id, user_id, model, prompt, inputs,"
                " inputs_set, seed, status, created_at, owner, lease_until, estimate_pico, pixels)"
                f" VALUES (?, ?, ?, ?, ?, ?, '', {inputs_set}, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.source,
                    r.guild_id,
                    r.channel_id,
                    r.user_id,
                    new.model,
                    new.prompt,
                    known if known is not None else stored,
                    new.seed,
                    new.status.value,
                    new.created_at,
                    new.owner,
                    new.lease_until,
                    None if new.estimate is None else to_pico(new.estimate),
                    _pixels(new.inputs),
                ),
            )
        )
        written = await self._writes.write(*statements)
        job_id = written.lastrowid
        assert job_id is not None
        if known is None:
            await self._learn_input_set(stored, job_id)
        return Job(
            id=job_id,
            model=new.model,
            prompt=new.prompt,
            inputs=dict(new.inputs),
            seed=new.seed,
            status=new.status,
            requester=r,
            created_at=new.created_at,
            estimate=new.estimate,
        )

    async def _learn_input_set(self, stored: str, job_id: int) -> None:
        """Remember the id of a set of inputs a new job was stored with (sets never change)."""
        async with self._conn.execute(
            "SELECT inputs_set FROM jobs WHERE id = ?", (job_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or row[0] is None:
            return
        if len(self._input_sets) >= _INPUT_SETS_CACHED:
            self._input_sets.clear()
        self._input_sets[stored] = int(row[0])

    async def update(self, job_id: int, **fields: Any) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if fields:
            await self._writes.write(_update(job_id, fields), *self._notices(job_id, fields))

    def _notices(self, job_id: int, fields: dict[str, Any]) -> list[Statement]:
        """What other processes sharing the database must hear of this change, said in its
        own transaction (PostgreSQL delivers a NOTIFY at commit, equal ones once)."""
        if not self.shared:
            return []
        notices: list[Statement] = []
        status = fields.get("status")
        if status is not None and (status in _FINAL or status in ("waiting", JobState.WAITING)):
            notices.append((_NOTIFY, ("freed",)))  # it left Wiro's slots, or may have
        if fields.get("cancel_requested"):
            notices.append((_NOTIFY, (f"cancel {job_id}",)))
        return notices

    async def claim_status(self, job_id: int, expected: JobState, new: JobState) -> bool:
        """Move a job from `expected` to `new` only if it is still there (compare-and-set)."""
        written = await self._writes.write(
            (
                "UPDATE jobs SET status = ? WHERE id = ? AND status = ?",
                (new.value, job_id, expected.value),
            )
        )
        return written.rowcount == 1

    # -- claims: one job, one owner ---------------------------------------------------------

    async def claim(self, job_id: int, owner: str, *, now: float, until: float) -> bool:
        """Take an unfinished job for `owner` if nobody holds it (or its lease has passed)."""
        written = await self._writes.write(
            (
                "UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ?"
                f" AND status NOT IN {_FINAL_SQL}"
                " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
                (owner, until, job_id, owner, now),
            )
        )
        return written.rowcount == 1

    async def claim_run(
        self, job_id: int, owner: str, *, submitted_at: float, until: float
    ) -> bool:
        """Mark a waiting job submitted and held by `owner`, only if it is still waiting and
        no other live process holds it (compare-and-set): the one step before a Run, so no
        job is ever Run twice."""
        written = await self._writes.write(_claim_run(job_id, owner, submitted_at, until))
        return written.rowcount == 1

    async def claim_run_within(
        self,
        job_id: int,
        owner: str,
        *,
        submitted_at: float,
        until: float,
        limits: RunLimits,
        guild_id: int | None,
        user_id: int | None,
    ) -> Claim:
        """`claim_run`, only while every process's jobs at Wiro (in all, of the job's server,
        of its member there) stay under `limits`: the limits hold across processes. A job
        with no server or no member (the command line's) counts against the whole only.

        PostgreSQL: processes take turns at the count (a transaction-scoped advisory lock, a
        few milliseconds), and the job's row is taken `FOR UPDATE SKIP LOCKED`, so a claim
        never waits on a row another process is writing (BUSY instead). SQLite: one writer
        at a time, so one conditional UPDATE is the whole claim."""

        async def counts() -> tuple[int, int, int]:
            return await self.active_counts(guild_id=guild_id, user_id=user_id)

        claim = _claim_run(job_id, owner, submitted_at, until)
        if not is_postgres(self._conn):
            sql, params = claim
            sql += f" AND (SELECT COUNT(*) FROM jobs WHERE {_ACTIVE_SQL}) < ?"
            params = (*params, limits.everywhere)
            if guild_id is not None:
                sql += f" AND (SELECT COUNT(*) FROM jobs WHERE {_ACTIVE_SQL} AND guild_id = ?) < ?"
                params = (*params, guild_id, limits.per_guild)
            if user_id is not None:
                sql += (
                    f" AND (SELECT COUNT(*) FROM jobs WHERE {_ACTIVE_SQL} AND guild_id IS ?"
                    " AND user_id = ?) < ?"
                )
                params = (*params, guild_id, user_id, limits.per_member)
            written = await self._writes.write((sql, params))
            if written.rowcount == 1:
                return Claim.RUN
            # Why not: read after the fact (the answer only decides when to look again).
            if not await self._claimable(job_id, owner, submitted_at):
                return Claim.GONE
            return _which_full(await counts(), limits, guild_id, user_id) or Claim.BUSY
        # Count and mark on one connection under the lock (not through the batcher, which
        # would need a second pooled connection while this one waits).
        async with transaction(self._conn):
            await self._conn.execute("SELECT pg_advisory_xact_lock(?)", (_RUN_LOCK,))
            rows = await self._fetch(
                "SELECT id FROM jobs WHERE id = ? AND status = 'waiting' AND (owner IS NULL"
                " OR owner = ? OR lease_until IS NULL OR lease_until < ?)"
                " FOR UPDATE SKIP LOCKED",
                (job_id, owner, submitted_at),
            )
            if not rows:
                claimable = await self._claimable(job_id, owner, submitted_at)
                return Claim.BUSY if claimable else Claim.GONE
            full = _which_full(await counts(), limits, guild_id, user_id)
            if full is not None:
                return full
            cursor = await self._conn.execute(*claim)
            return Claim.RUN if cursor.rowcount == 1 else Claim.GONE

    async def _claimable(self, job_id: int, owner: str, now: float) -> bool:
        """Whether `owner` could claim this waiting job (a plain read: it never waits)."""
        rows = await self._fetch(
            "SELECT 1 FROM jobs WHERE id = ? AND status = 'waiting' AND (owner IS NULL"
            " OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
            (job_id, owner, now),
        )
        return bool(rows)

    async def active_counts(
        self, *, guild_id: int | None, user_id: int | None
    ) -> tuple[int, int, int]:
        """Jobs holding a slot at Wiro, over every process: in all, of a server, of a member
        of it (from the partial index of unfinished jobs: the active rows only)."""
        rows = await self._fetch(
            f"SELECT COUNT(*), coalesce(SUM(CASE WHEN guild_id IS ? THEN 1 ELSE 0 END), 0),"
            " coalesce(SUM(CASE WHEN guild_id IS ? AND user_id IS ? THEN 1 ELSE 0 END), 0)"
            f" FROM jobs WHERE {_ACTIVE_SQL}",
            (guild_id, guild_id, user_id),
        )
        return int(rows[0][0]), int(rows[0][1]), int(rows[0][2])

    async def renew(self, owner: str, *, until: float) -> set[int]:
        """Extend the lease of every unfinished job `owner` holds; returns their ids."""
        await self._writes.write(
            (
                f"UPDATE jobs SET lease_until = ? WHERE owner = ? AND status NOT IN {_FINAL_SQL}",
                (until, owner),
            )
        )
        async with self._conn.execute(
            f"SELECT id FROM jobs WHERE owner = ? AND status NOT IN {_FINAL_SQL}", (owner,)
        ) as cursor:
            return {int(row[0]) for row in await cursor.fetchall()}

    async def release(self, owner: str) -> None:
        """Give up every unfinished job `owner` holds (a clean shutdown): another process
        may take them at once (told so by a notice, "released")."""
        await self._writes.write(
            (
                "UPDATE jobs SET owner = NULL, lease_until = NULL"
                f" WHERE owner = ? AND status NOT IN {_FINAL_SQL}",
                (owner,),
            ),
            *([(_NOTIFY, ("released",))] if self.shared else []),
        )

    # -- cancelling from any process ----------------------------------------------------------

    async def cancel_waiting(self, job_id: int, *, now: float) -> bool:
        """Cancel a job that never reached Wiro, whichever process has it in line
        (compare-and-set on its state: the one holding it would Run it only from 'waiting')."""
        # The notice first, so the UPDATE's count is the write's answer (a NOTIFY goes at
        # commit whatever its place; one that finds nothing changed is ignored).
        written = await self._writes.write(
            *self._notices(job_id, {"cancel_requested": True}),
            (
                "UPDATE jobs SET status = 'cancelled', cancel_requested = 1, finished_at = ?,"
                " elapsed_seconds = ? - created_at WHERE id = ?"
                " AND status IN ('created', 'waiting')",
                (now, now, job_id),
            ),
        )
        return written.rowcount == 1

    async def request_cancel(self, job_id: int) -> bool:
        """Ask whichever process follows an unfinished job to cancel it (the notice reaches
        it at once on PostgreSQL; otherwise at its next look, `cancels_asked`)."""
        written = await self._writes.write(
            *self._notices(job_id, {"cancel_requested": True}),
            (
                f"UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status NOT IN {_FINAL_SQL}",
                (job_id,),
            ),
        )
        return written.rowcount == 1

    async def holder(self, job_id: int, *, now: float | None = None) -> str | None:
        """The process that holds a job (created or claimed it); with `now`, only while its
        lease holds."""
        rows = await self._fetch("SELECT owner, lease_until FROM jobs WHERE id = ?", (job_id,))
        if not rows or rows[0][0] is None:
            return None
        if now is not None and (rows[0][1] is None or float(rows[0][1]) < now):
            return None
        return str(rows[0][0])

    async def cancels_asked(self, owner: str) -> set[int]:
        """Unfinished jobs `owner` holds that someone asked to cancel."""
        rows = await self._fetch(
            f"SELECT id FROM jobs WHERE status NOT IN {_FINAL_SQL} AND owner = ?"
            " AND cancel_requested <> 0",
            (owner,),
        )
        return {int(row[0]) for row in rows}

    async def finished_among(self, job_ids: Iterable[int]) -> list[Job]:
        """Those of these jobs that are finished (another process ended them)."""
        ids = list(job_ids)
        found: list[Job] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = await self._fetch(
                f"{_SELECT_JOBS} WHERE jobs.id IN ({', '.join('?' for _ in chunk)})"
                f" AND status IN {_FINAL_SQL}",
                tuple(chunk),
            )
            found += [_job(row) for row in rows]
        return found

    async def unclaimed(self, *, now: float) -> list[Job]:
        """Unfinished jobs nobody holds: never claimed, released, or their lease has passed."""
        async with self._conn.execute(
            f"{_SELECT_JOBS} WHERE status NOT IN {_FINAL_SQL}"
            " AND (owner IS NULL OR lease_until IS NULL OR lease_until < ?) ORDER BY jobs.id",
            (now,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [_job(row) for row in rows]

    # -- posting: one result, one post --------------------------------------------------------

    async def claim_posting(
        self, job_id: int, poster: str, *, now: float, until: float
    ) -> PostingClaim | None:
        """Take the posting of a finished, unposted job for `poster` (compare-and-set), unless
        another poster holds it; None when it is posted or held. The claim says whether an
        earlier poster took it and never recorded the post (it may have gone out)."""
        async with self._conn.execute(
            "SELECT poster, posting_until, posted_at FROM jobs WHERE id = ?", (job_id,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or row[2] is not None:
            return None
        held_by, held_until = row[0], row[1]
        if held_by is not None and held_by != poster and (held_until or 0) >= now:
            return None
        # Taken only if nobody changed it since the look above.
        written = await self._writes.write(
            (
                "UPDATE jobs SET poster = ?, posting_until = ? WHERE id = ?"
                " AND posted_at IS NULL AND COALESCE(poster, '') = ?",
                (poster, until, job_id, held_by or ""),
            )
        )
        if written.rowcount != 1:
            return None
        return PostingClaim(interrupted=held_by is not None and held_by != poster)

    async def owner_of(self, job_id: int) -> str | None:
        """The process holding the job's claim (None: nobody)."""
        async with self._conn.execute("SELECT owner FROM jobs WHERE id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else row[0]

    async def renew_posting(self, job_id: int, poster: str, *, until: float) -> None:
        await self._writes.write(
            (
                "UPDATE jobs SET posting_until = ? WHERE id = ? AND poster = ?"
                " AND posted_at IS NULL",
                (until, job_id, poster),
            )
        )

    async def orphaned_posts(self, *, now: float, ended_before: float) -> list[Job]:
        """Finished Discord jobs nobody posted or is posting, ended before `ended_before`
        (the process that finished one would have claimed it by then: it died)."""
        async with self._conn.execute(
            f"{_SELECT_JOBS} WHERE status IN {_FINAL_SQL} AND posted_at IS NULL"
            " AND source = 'discord' AND COALESCE(finished_at, created_at) < ?"
            " AND (poster IS NULL OR posting_until IS NULL OR posting_until < ?)"
            " ORDER BY jobs.id",
            (ended_before, now),
        ) as cursor:
            rows = await cursor.fetchall()
        return await self.with_outputs(rows)

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
        async with self._conn.execute(f"{_SELECT_JOBS} WHERE jobs.id = ?", (job_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        job = _job(row)
        job.outputs = await self.outputs(job_id)
        return job

    async def unfinished(self) -> list[Job]:
        async with self._conn.execute(
            f"{_SELECT_JOBS} WHERE status NOT IN {_FINAL_SQL} ORDER BY jobs.id"
        ) as cursor:
            rows = await cursor.fetchall()
        return [_job(row) for row in rows]

    async def unposted(self) -> list[Job]:
        """Finished Discord jobs whose result was never posted (the bot stopped in between)."""
        async with self._conn.execute(
            f"{_SELECT_JOBS} WHERE status IN {_FINAL_SQL} AND posted_at IS NULL"
            " AND source = 'discord' ORDER BY jobs.id"
        ) as cursor:
            rows = await cursor.fetchall()
        return await self.with_outputs(rows)

    async def search_match(
        self,
        search: str | None,
        *,
        guild_id: int | None,
        user_id: int | None = None,
        model: str | None = None,
    ) -> tuple[str, str, list[Any]] | None:
        """The history's prompt search for other pages (the gallery): (the FROM source, the
        condition, its parameters) that pick the jobs having the search's words, through the
        search index; None when the words cannot narrow (none, or only stop words). The
        caller keeps its own conditions (and LIKE for "contains this text")."""
        words = _WORD.findall(search.lower()) if search else []
        if not words:
            return None
        if is_postgres(self._conn):
            if not await self._has_lexemes(words):
                return None
            return "jobs", _PG_MATCH, [" ".join(words), _pg_where(guild_id, user_id)]
        terms = []
        token = model_token(model) if model and guild_id is not None else None
        if guild_id is not None:
            terms.append(f"g{int(guild_id)}{token or ''}")
        if user_id is not None:
            terms.append(f"u{int(user_id)}")
        terms += words
        return (
            "jobs_search CROSS JOIN jobs ON jobs.id = jobs_search.rowid",
            "jobs_search MATCH ?",
            [" AND ".join(f'"{term}"' for term in terms)],
        )

    async def _has_lexemes(self, words: list[str]) -> bool:
        """PostgreSQL: whether text search keeps any of the words (not all stop words). Asked
        apart, so the search's condition stays one that the words index can serve."""
        text = " ".join(words)
        known = _LEXEMES.get(text)
        if known is None:
            async with self._conn.execute(
                "SELECT numnode(plainto_tsquery('english', ?)) > 0", (text,)
            ) as cursor:
                row = await cursor.fetchone()
            known = bool(row and row[0])
            if len(_LEXEMES) >= 1024:
                _LEXEMES.clear()
            _LEXEMES[text] = known
        return known

    def planned(self, search: bool) -> AbstractAsyncContextManager[None]:
        """Around a search's statements: on PostgreSQL, planned for their parameters (see
        `PgConnection.custom_plans`)."""
        if search and is_postgres(self._conn):
            return cast("PgConnection", self._conn).custom_plans()
        return nullcontext()

    async def _dialect(self, query: HistoryQuery) -> _Words | None:
        """None on SQLite (FTS5); on PostgreSQL, whether text search can narrow the search
        (its words are not all stop words)."""
        if not is_postgres(self._conn):
            return None
        words = _WORD.findall(query.search.lower()) if query.search else []
        return _Words(bool(words) and await self._has_lexemes(words))

    async def history(self, query: HistoryQuery) -> list[Job]:
        """One page of jobs, newest first, walking ids from the keyset (never OFFSET)."""
        order = "ASC" if query.after_id is not None else "DESC"
        pg = await self._dialect(query)
        try:
            async with self.planned(bool(pg and pg.narrow)):
                rows = []
                if _windowed(query, pg) and order == "DESC":
                    sql, params = _history_sql(
                        query, _JOB_COLUMNS, order=order, fts=False, pg=pg, window=_PG_WINDOW
                    )
                    rows = await self._fetch(sql, (*params, query.limit))
                if len(rows) < query.limit:
                    sql, params = _history_sql(
                        query, _JOB_COLUMNS, order=order, fts=pg is None, pg=pg
                    )
                    rows = await self._fetch(sql, (*params, query.limit))
        except sqlite3.OperationalError:
            # A search FTS5 cannot parse: read it plainly instead (slower, still right).
            sql, params = _history_sql(query, _JOB_COLUMNS, order=order, fts=False)
            rows = await self._fetch(sql, (*params, query.limit))
        jobs = [_job(row) for row in rows]
        return jobs[::-1] if order == "ASC" else jobs

    async def count_history(self, query: HistoryQuery, *, cap: int | None = None) -> int:
        """How many jobs match, ignoring the keyset; counting stops at `cap` (a page never
        pays for counting a whole server)."""
        unpaged = HistoryQuery(
            guild_id=query.guild_id,
            user_id=query.user_id,
            model=query.model,
            search=query.search,
            channel_ids=query.channel_ids,
        )
        limit = " LIMIT ?" if cap is not None else ""
        extra = (cap,) if cap is not None else ()
        pg = await self._dialect(query)
        try:
            sql, params = _history_sql(unpaged, "1", order=None, fts=pg is None, pg=pg)
            async with self.planned(bool(pg and pg.narrow)):
                rows = await self._fetch(
                    f"SELECT COUNT(*) FROM ({sql}{limit}) AS matching", (*params, *extra)
                )
        except sqlite3.OperationalError:
            sql, params = _history_sql(unpaged, "1", order=None, fts=False)
            rows = await self._fetch(
                f"SELECT COUNT(*) FROM ({sql}{limit}) AS matching", (*params, *extra)
            )
        return int(rows[0][0]) if rows else 0

    async def _fetch(self, sql: str, params: tuple[Any, ...] = ()) -> list[aiosqlite.Row]:
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def count_started_since(self, *, user_id: int, guild_id: int | None, since: float) -> int:
        """Jobs a member started since a time, cancelled-before-Wiro ones not counted."""
        window, params = member_since(guild_id, user_id, since)
        async with self._conn.execute(
            f"SELECT COUNT(*) FROM jobs WHERE {window}"
            " AND NOT (status = 'cancelled' AND task_id IS NULL)",
            params,
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def oldest_started_since(
        self, *, user_id: int, guild_id: int | None, since: float
    ) -> float | None:
        window, params = member_since(guild_id, user_id, since)
        # MIN(+created_at), not MIN(created_at): PostgreSQL would read the latter as "the
        # first row of the server's time index that passes", walking the server's history.
        async with self._conn.execute(
            f"SELECT MIN(+created_at) FROM jobs WHERE {window}"
            " AND NOT (status = 'cancelled' AND task_id IS NULL)",
            params,
        ) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def spend(self, *, guild_id: int | None, since: float = 0.0) -> tuple[int, Decimal]:
        """(jobs, total cost in USD, exact) for a server since a time.

        Whole days come from `guild_days`; only the day `since` cuts through is read from
        the server's jobs (a day of a server, not a month of it).
        """
        guild = 0 if guild_id is None else guild_id
        if since <= 0:
            async with self._conn.execute(
                "SELECT coalesce(SUM(jobs), 0), coalesce(SUM(cost_pico), 0) FROM guild_days"
                " WHERE guild = ?",
                (guild,),
            ) as cursor:
                row = await cursor.fetchone()
            return (int(row[0]), from_pico(int(row[1]))) if row else (0, ZERO)
        cut = int(since // 86400)  # the day `since` falls in
        async with self._conn.execute(
            "SELECT coalesce(SUM(jobs), 0), coalesce(SUM(cost_pico), 0) FROM guild_days"
            " WHERE guild = ? AND day > ?",
            (guild, cut),
        ) as cursor:
            whole = await cursor.fetchone()
        async with self._conn.execute(
            _SPEND_PART_SQL, (guild_id, since, (cut + 1) * 86400.0)
        ) as cursor:
            part = await cursor.fetchone()
        jobs = sum(int(row[0]) for row in (whole, part) if row)
        pico = sum(int(row[1]) for row in (whole, part) if row)
        return jobs, from_pico(pico)

    async def typical_durations(self, per_model: int = 20) -> dict[str, float]:
        """Median seconds from submission to finish of recent successful jobs, per model.

        Recent: among the last few thousand jobs, a rowid range; reading the whole history
        at every start-up cost seconds at a million jobs."""
        async with self._conn.execute(
            "SELECT model, finished_at - submitted_at FROM jobs"
            " WHERE id > (SELECT coalesce(max(id), 0) FROM jobs) - ?"
            " AND status = 'succeeded' AND submitted_at IS NOT NULL AND finished_at IS NOT NULL"
            " ORDER BY id DESC",
            (_RECENT_JOBS,),
        ) as cursor:
            rows = await cursor.fetchall()
        samples: dict[str, list[float]] = {}
        for model, seconds in rows:
            found = samples.setdefault(model, [])
            if seconds is not None and seconds > 0 and len(found) < per_model:
                found.append(float(seconds))
        return {model: sorted(v)[len(v) // 2] for model, v in samples.items() if v}

    async def forget_interaction_tokens(self, *, issued_before: float) -> int:
        """Drop the interaction tokens issued before a time (Discord's expire after 15
        minutes): they are secrets and most of a row's bytes. Returns how many."""
        written = await self._writes.write(
            (
                "UPDATE jobs SET interaction_token = NULL, interaction_at = NULL"
                " WHERE interaction_token IS NOT NULL AND interaction_at < ?",
                (issued_before,),
            )
        )
        return written.rowcount

    async def finish(self, job_id: int, outputs: Iterable[Output], **fields: Any) -> None:
        """Store a job's outputs and its final fields in one transaction."""
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        statements: list[Statement] = []
        rows = [
            (job_id, o.position, o.name, o.content_type, o.size, o.url, o.path, o.width, o.height)
            for o in outputs
        ]
        if rows:
            # One multi-row INSERT: executemany shares sqlite3's statement cache unsafely
            # under load ("bad parameter or other API misuse"). An upsert, not INSERT OR
            # REPLACE, so PostgreSQL reads it too.
            placeholders = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
            statements.append(
                (
                    "INSERT INTO outputs (job_id, position, name, content_type, size, url,"
                    f" path, width, height) VALUES {placeholders}"
                    " ON CONFLICT (job_id, position) DO UPDATE SET name = excluded.name,"
                    " content_type = excluded.content_type, size = excluded.size,"
                    " url = excluded.url, path = excluded.path, width = excluded.width,"
                    " height = excluded.height",
                    [value for row in rows for value in row],
                )
            )
        if fields:
            statements.append(_update(job_id, fields))
            statements += self._notices(job_id, fields)
        if statements:
            await self._writes.write(*statements)

    # -- retention ---------------------------------------------------------------------------

    async def oldest_files(self, limit: int) -> list[StoredFile]:
        """Outputs still on disk, oldest job first."""
        async with self._conn.execute(
            "SELECT outputs.job_id, outputs.position, outputs.path, outputs.size,"
            " jobs.created_at FROM outputs JOIN jobs ON jobs.id = outputs.job_id"
            " WHERE outputs.path IS NOT NULL ORDER BY outputs.job_id LIMIT ?",
            (limit,),
        ) as cursor:
            rows = await cursor.fetchall()
        return [StoredFile(*row) for row in rows]

    async def bytes_on_disk(self) -> int:
        """The size of every output still on disk (from the partial index alone)."""
        async with self._conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM outputs WHERE path IS NOT NULL"
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def expire_files(self, files: list[StoredFile], *, at: float) -> None:
        """Record that these outputs are no longer on disk; a job none of whose outputs is
        left is marked expired, so history says so instead of showing a broken image."""
        if not files:
            return
        keys = [value for f in files for value in (f.job_id, f.position)]
        # Typed, for PostgreSQL (a bare parameter in VALUES is text there).
        pairs = ", ".join(["(CAST(? AS BIGINT), CAST(? AS BIGINT))"] * len(files))
        job_ids = sorted({f.job_id for f in files})
        await self._writes.write(
            (
                f"UPDATE outputs SET path = NULL WHERE (job_id, position) IN (VALUES {pairs})",
                keys,
            ),
            (
                "UPDATE jobs SET outputs_expired_at = ?"
                f" WHERE id IN ({', '.join('?' for _ in job_ids)}) AND NOT EXISTS"
                " (SELECT 1 FROM outputs WHERE outputs.job_id = jobs.id AND path IS NOT NULL)",
                (at, *job_ids),
            ),
        )

    async def outputs(self, job_id: int) -> list[Output]:
        async with self._conn.execute(
            "SELECT * FROM outputs WHERE job_id = ? ORDER BY position", (job_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [_output(row) for row in rows]

    async def with_outputs(self, rows: Iterable[aiosqlite.Row]) -> list[Job]:
        """Jobs from rows of `_SELECT_JOBS`, their outputs read in one query per
        `_IDS_PER_QUERY` jobs rather than one per job (start-up reads every unposted job)."""
        jobs = [_job(row) for row in rows]
        by_id = {job.id: job for job in jobs}
        ids = list(by_id)
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            async with self._conn.execute(
                f"SELECT * FROM outputs WHERE job_id IN ({', '.join('?' for _ in chunk)})"
                " ORDER BY job_id, position",
                chunk,
            ) as cursor:
                for row in await cursor.fetchall():
                    by_id[row["job_id"]].outputs.append(_output(row))
        return jobs


def _output(row: aiosqlite.Row) -> Output:
    return Output(
        position=row["position"],
        name=row["name"],
        content_type=row["content_type"],
        size=row["size"],
        url=row["url"],
        path=row["path"],
        width=row["width"],
        height=row["height"],
    )


def _history_sql(
    query: HistoryQuery,
    columns: str,
    *,
    order: str | None,
    fts: bool = True,
    pg: _Words | None = None,
    window: int | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """The SELECT for a history query; with `order` ("ASC", "DESC") ordered by id and
    ending in `LIMIT ?`.

    A search or a model filter goes through the `jobs_search` FTS5 index first (CROSS JOIN
    keeps it the outer loop), the server, member and model included in the match, so it
    reads the matching jobs only, in id order. Words match whole (stemmed: "cats" finds
    "cat"); LIKE then keeps the meaning "the prompt contains this text" among them, and the
    SQL conditions stay the judge of server, member and model. PostgreSQL (`pg`) matches the
    words whole and stemmed with its own text search ('english', served by migration 0007's
    index; a search of stop words only is left to ILIKE), then ILIKE as well.

    `window` (PostgreSQL, a server's search): read only the server's (or member's) newest
    `window` jobs below the keyset, walking its index; see `_windowed`."""
    clauses: list[str] = []
    params: list[Any] = []
    source, key = "jobs", "jobs.id"
    if window is not None:
        inner = ["jobs.guild_id = ?"]
        params.append(query.guild_id)
        if query.user_id is not None:
            inner.append("jobs.user_id = ?")
            params.append(query.user_id)
        if query.before_id is not None:
            inner.append("jobs.id < ?")
            params.append(query.before_id)
        source = (
            f"(SELECT * FROM jobs WHERE {' AND '.join(inner)}"
            f" ORDER BY jobs.id DESC LIMIT {int(window)}) AS jobs"
        )
    words = _WORD.findall(query.search.lower()) if query.search else []
    # A model filter's word is per server: "g<guild>m<model>".
    model = model_token(query.model) if query.model and query.guild_id is not None else None
    judged: set[str] = set()  # columns the search's index decides exactly
    if fts and (words or model):
        source = "jobs_search CROSS JOIN jobs ON jobs.id = jobs_search.rowid"
        key = "jobs_search.rowid"
        terms = []
        if query.guild_id is not None:
            guild = f"g{int(query.guild_id)}"
            # With a model: the server's jobs of that model, one list to read.
            terms.append(guild + model if model else guild)
        if query.user_id is not None:
            terms.append(f"u{int(query.user_id)}")
        terms += words
        clauses.append("jobs_search MATCH ?")
        params.append(" AND ".join(f'"{term}"' for term in terms))
    elif pg is not None and pg.narrow and words:
        clauses.append(_PG_MATCH)
        params += [" ".join(words), _pg_where(query.guild_id, query.user_id)]
        # The index's server and member words decide those exactly (a prompt cannot make a
        # word with a space): said twice, the planner would count them twice and expect
        # too few matches.
        judged = {"guild_id", "user_id"}
    for column, value in (
        ("guild_id", query.guild_id),
        ("user_id", query.user_id),
        ("model", query.model),
    ):
        if value is not None and column not in judged:
            clauses.append(f"jobs.{column} = ?")
            params.append(value)
    if query.channel_ids is not None:
        clauses.append(_in_channels(query.channel_ids, params))
    if query.search:
        clauses.append(_prompt_contains(query.search, params))
    if query.before_id is not None:
        clauses.append(f"{key} < ?")
        params.append(query.before_id)
    if query.after_id is not None:
        clauses.append(f"{key} > ?")
        params.append(query.after_id)
    if columns == _JOB_COLUMNS:
        source += f" {_WITH_INPUTS}"
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    tail = f" ORDER BY {key} {order} LIMIT ?" if order else ""
    return f"SELECT {columns} FROM {source}{where}{tail}", tuple(params)


def _in_channels(channels: frozenset[int], params: list[Any]) -> str:
    """The condition "in one of these channels", its ids added to `params`. No channel: no
    job (FALSE, a boolean on both backends)."""
    ids = sorted(channels)
    params.extend(ids)
    return f"jobs.channel_id IN ({', '.join('?' for _ in ids)})" if ids else "FALSE"


def _prompt_contains(text: str, params: list[Any]) -> str:
    """The condition "the prompt contains this text" (% and _ as plain characters), its
    pattern added to `params`; a search's words index finds the candidates first."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    params.append(f"%{escaped}%")
    return "jobs.prompt LIKE ? ESCAPE '\\'"


def model_token(slug: str) -> str | None:
    """A model's part of its word in the search index ("g<guild>m..."), as migration 0002's
    triggers write it: "m" and the slug's letters and digits. None for a slug those
    triggers cannot spell."""
    token = "m" + re.sub(r"[/\-_.]", "", slug.lower())
    return token if re.fullmatch(r"m[0-9a-z]+", token) else None


def _stored_inputs(inputs: dict[str, Any], prompt: str, seed: int) -> str:
    """Inputs as an input set stores them: compact JSON, the prompt and seed as null
    placeholders (their columns hold them), so jobs with the same options share one set."""
    placed = {
        k: None
        if (k == "prompt" and v == prompt) or (k == "seed" and type(v) is int and v == seed)
        else v
        for k, v in inputs.items()
    }
    return json.dumps(placed, separators=(",", ":"))


def _update(job_id: int, fields: dict[str, Any]) -> Statement:
    columns = {name: _to_sql(v) for name, v in fields.items() if name != "cost"}
    if "cost" in fields:
        amount = parse_usd(fields["cost"])  # Wiro's string; kept exact, in picodollars
        columns["cost_pico"] = None if amount is None else to_pico(amount)
    assignments = ", ".join(f"{name} = ?" for name in columns)
    return (f"UPDATE jobs SET {assignments} WHERE id = ?", (*columns.values(), job_id))


def _to_sql(value: Any) -> Any:
    if isinstance(value, Decimal):
        return to_pico(value)
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
        inputs=_inputs(row),
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
        cost=_money(row["cost_pico"]),
        estimate=_money(row["estimate_pico"]),
        error=row["error"],
        error_kind=ErrorKind(row["error_kind"]) if row["error_kind"] else None,
        status_message_id=row["status_message_id"],
        interaction_token=row["interaction_token"],
        interaction_at=row["interaction_at"],
        result_message_id=row["result_message_id"],
        posted_at=row["posted_at"],
        outputs_expired_at=row["outputs_expired_at"],
    )


def _inputs(row: aiosqlite.Row) -> dict[str, Any]:
    shared = row["set_inputs"]
    if shared is None:  # a row written without an input set: its own JSON
        own: dict[str, Any] = json.loads(row["inputs"] or "{}")
        return own if "prompt" in own else {"prompt": row["prompt"], **own}
    inputs: dict[str, Any] = json.loads(shared)
    for key in ("prompt", "seed"):
        if key in inputs and inputs[key] is None:
            inputs[key] = row[key]
    return inputs


def _pixels(inputs: dict[str, Any]) -> int | None:
    """Output pixels (width x height x samples), to price a job by similar past ones."""
    try:
        return (
            int(inputs.get("width") or 1024)
            * int(inputs.get("height") or 1024)
            * int(inputs.get("samples") or 1)
        )
    except (TypeError, ValueError):
        return None


def _money(pico: int | None) -> Decimal | None:
    return None if pico is None else from_pico(int(pico))


def _claim_run(job_id: int, owner: str, submitted_at: float, until: float) -> Statement:
    return (
        "UPDATE jobs SET status = 'submitted', submitted_at = ?, owner = ?,"
        " lease_until = ? WHERE id = ? AND status = 'waiting'"
        " AND (owner IS NULL OR owner = ? OR lease_until IS NULL OR lease_until < ?)",
        (submitted_at, owner, until, job_id, owner, submitted_at),
    )


def _which_full(
    counts: tuple[int, int, int], limits: RunLimits, guild_id: int | None, user_id: int | None
) -> Claim | None:
    """Which limit the counts (in all, server, member) reach; None: none. A job with no
    server or no member (the CLI's) counts in all only."""
    everywhere, guild, member = counts
    if everywhere >= limits.everywhere:
        return Claim.FULL
    if guild_id is not None and guild >= limits.per_guild:
        return Claim.GUILD_FULL
    if user_id is not None and member >= limits.per_member:
        return Claim.MEMBER_FULL
    return None
