"""Dispatch: the local waiting line, our own concurrency limits, and when to send the next Run.

A job leaves the line when a slot is free for it (over all, per server, per member) and the
`WiroGate` lets a Run go; `start` then sends its Run. Waiting jobs carry, in `waiting_for`,
why Wiro's side holds them back.

Processes sharing a database (`shared`) count those slots in the database when a job is
claimed (`limits_for`): this process's own counts are only the fast first check. The fair
order stays this line's: it rests on live loads and turns that only the dispatcher keeps, so a
process claims only the job it would Run next. A claim the others' jobs refuse holds back
what it refused (everything, a server, a member) until a slot frees anywhere: a notice from
the database (`heard_freed`), or the periodic look again (`recheck` seconds) if none came.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable

from bot.jobs.book import JobBook
from bot.jobs.gate import WiroGate
from bot.jobs.job import Job, JobState
from bot.jobs.waiting_line import WaitingLine
from bot.settings import JobSettings
from bot.store import Claim, GuildSettings, RunLimits

#: What a refused claim holds back: everything, or one server's or one member's jobs.
_EVERYONE = "everyone"


class Dispatcher:
    def __init__(
        self,
        book: JobBook,
        settings: JobSettings,
        start: Callable[[Job, bool], Awaitable[None]],
        gate: WiroGate | None = None,
    ) -> None:
        """`start(job, probe)` sends a job's Run; `probe` says it tests a limit of Wiro's."""
        self._book = book
        self._settings = settings
        self._start = start
        self.gate = gate or WiroGate()
        self.line = WaitingLine(book.active_by_owner)
        self._user_caps: dict[int, int] = {}  # guild -> its per-member concurrency setting
        self._told: str | None = None  # the reason waiting jobs were last given
        #: Whether other processes share the database (and so the limits).
        self.shared = False
        #: Seconds until a claim refused by the others' jobs is tried again unasked.
        self.recheck = settings.shared_recheck_seconds
        self._full: set[Hashable] = set()  # held back by the others' jobs at Wiro
        self._recheck_at: float | None = None  # loop time to forget `_full`
        #: Notices of freed slots heard so far: a claim compares it before and after.
        self.freed_heard = 0

    def learn_user_cap(self, guild: GuildSettings) -> None:
        """Remember a server's jobs-at-once per member (None: the bot's setting applies)."""
        if guild.max_concurrent_per_user is None:
            self._user_caps.pop(guild.guild_id, None)
        else:
            self._user_caps[guild.guild_id] = guild.max_concurrent_per_user

    async def enqueue(self, job: Job, *, front: bool = False) -> None:
        job.waiting_for = self._told
        if job.status is not JobState.WAITING:
            await self._book.set(job, status=JobState.WAITING)
        self.line.push(job, front=front)
        self._book.wakeup.set()

    def line_ids(self) -> list[int]:
        """The waiting jobs' ids, in no particular order."""
        return self.line.ids()

    def position(self, job_id: int) -> int | None:
        return self.line.position(job_id)

    def positions(self) -> dict[int, int]:
        return self.line.positions()

    # -- limits shared with other processes ---------------------------------------------------

    def limits_for(self, job: Job) -> RunLimits | None:
        """The limits a claim of this job checks in the database (None: not shared)."""
        if not self.shared:
            return None
        return RunLimits(
            self._settings.max_concurrent,
            self._settings.max_concurrent_per_guild,
            self._per_user(job),
        )

    def held_back(self, job: Job, claim: Claim, *, heard: int) -> None:
        """The others' jobs at Wiro refused this job's claim. `heard`: `freed_heard` before
        the claim; a notice heard since may have come after the count, so nothing is held
        back then (a wake-up is never lost between the count and the holding back)."""
        if claim is Claim.BUSY:
            self._full.add(("job", job.id))  # its row is being written: a moment later
        elif heard == self.freed_heard:
            if claim is Claim.FULL:
                self._full.add(_EVERYONE)
            elif claim is Claim.GUILD_FULL:
                self._full.add(("guild", job.guild_id))
            else:
                self._full.add(("member", job.guild_id, job.user_id))
        loop = asyncio.get_running_loop()
        soon = claim is Claim.BUSY or not self._full
        again = loop.time() + (min(self.recheck, 0.05) if soon else self.recheck)
        self._recheck_at = again if self._recheck_at is None else min(self._recheck_at, again)

    @property
    def holding_back(self) -> bool:
        """Whether some waiting jobs are held back by the other processes' jobs at Wiro."""
        return bool(self._full)

    def heard_freed(self) -> None:
        """A slot freed somewhere (a notice from another process, or this one's own)."""
        self.freed_heard += 1
        if self._full or self._recheck_at is not None:
            self._full.clear()
            self._recheck_at = None
            self._book.wakeup.set()

    def _recheck_due(self) -> float | None:
        """Seconds until the look again; at 0, what was held back is let go."""
        if self._recheck_at is None:
            return None
        left = self._recheck_at - asyncio.get_running_loop().time()
        if left <= 0:
            self._full.clear()
            self._recheck_at = None
            return None
        return left

    def _per_user(self, job: Job) -> int:
        if job.guild_id is not None and job.guild_id in self._user_caps:
            return self._user_caps[job.guild_id]
        return self._settings.max_concurrent_per_user

    def _may_start(self, job: Job) -> bool:
        book = self._book
        full = self._full
        if full and (
            ("guild", job.guild_id) in full
            or ("member", job.guild_id, job.user_id) in full
            or ("job", job.id) in full
        ):
            return False
        if book.active >= self._settings.max_concurrent:
            return False
        if book.active_by_guild[job.guild_id] >= self._settings.max_concurrent_per_guild:
            return False
        return book.active_by_owner[(job.guild_id, job.user_id)] < self._per_user(job)

    async def run(self) -> None:
        wakeup = self._book.wakeup
        while True:
            self._recheck_due()  # lets go of what was held back, once its time came
            self._send_what_may_go()
            self._tell_waiting()
            # Wake for a freed slot or a new job, or when the gate may open by time alone,
            # or to look again at what the other processes' jobs held back.
            delay = self.gate.next_look() if len(self.line) else None
            recheck = self._recheck_due()
            if recheck is not None:
                delay = recheck if delay is None else min(delay, recheck)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await wakeup.wait()
            wakeup.clear()

    def _send_what_may_go(self) -> None:
        book = self._book
        while len(self.line):
            at_wiro = book.active
            if not self.gate.may_run(at_wiro):
                return
            if book.active >= self._settings.max_concurrent or _EVERYONE in self._full:
                return  # no slot for anyone: no need to walk the line
            job = self.line.pop_next(self._may_start)
            if job is None:
                return
            probe = self.gate.sending(at_wiro)
            job.waiting_for = None
            book.hold_slot(job)
            book.spawn(job, self._start(job, probe))

    def _tell_waiting(self) -> None:
        """Give every waiting job the gate's reason, when it changed."""
        reason = self.gate.reason(self._book.at_wiro)
        if reason == self._told:
            return
        self._told = reason
        for job in tuple(self._book.jobs.values()):
            if job.id in self.line and job.waiting_for != reason:
                job.waiting_for = reason
                self._book.publish(job)
