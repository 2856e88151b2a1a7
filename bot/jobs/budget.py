"""Budgets: a job whose price would take its server or member past what is left is refused
before any Wiro call.

Periods are UTC calendar days and months. Jobs still waiting or at Wiro count with their
estimate until their real cost is known; checking and storing a job happen under one lock, so a
burst cannot overshoot a budget by more than the estimates' error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.jobs.job import Requester
from bot.money import ZERO, usd
from bot.store import Store
from bot.store.spend import Budget

#: Alerts to the alerts channel at these shares of the server's monthly budget.
THRESHOLDS = (50, 80, 100)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime
    name: str  # "November", "today"

    @property
    def key(self) -> str:
        return self.start.strftime("%Y-%m")


def month_of(now: float) -> Period:
    start = datetime.fromtimestamp(now, UTC).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    end = (start + timedelta(days=32)).replace(day=1)
    return Period(start, end, start.strftime("%B"))


def day_of(now: float) -> Period:
    start = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Period(start, start + timedelta(days=1), "today")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a job may not run, with the numbers; `renews_at` is when the period ends."""

    message: str
    renews_at: float


@dataclass(frozen=True, slots=True)
class Crossing:
    """The server's monthly spend has reached `threshold` % of its budget this month."""

    guild_id: int
    channel_id: int
    threshold: int
    spent: Decimal
    budget: Decimal
    period: Period


class Budgets:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._admitting = asyncio.Lock()

    @asynccontextmanager
    async def admitting(self) -> AsyncIterator[None]:
        """Hold while checking a job and storing it, so two jobs never spend the same dollar."""
        async with self._admitting:
            yield

    async def applies(self, requester: Requester) -> bool:
        """Whether any budget holds for this requester (most servers set none: their jobs
        skip the check and the lock)."""
        if requester.guild_id is None:
            return False
        budget = await self.store.spend.recent_budget(requester.guild_id)
        return any(
            limit is not None
            for limit in (budget.server_monthly, budget.member_monthly, budget.member_daily)
        )

    async def check(
        self, requester: Requester, price: Decimal | None, *, now: float
    ) -> Refusal | None:
        """None when the job fits every budget of its server; else why not. A job of unknown
        price fits while something is left."""
        if requester.guild_id is None:
            return None  # the command line: the owner's own jobs
        budget = await self.store.spend.budget(requester.guild_id)
        month, day = month_of(now), day_of(now)
        checks: list[tuple[Decimal | None, Period, int | None, str]] = [
            (budget.server_monthly, month, None, "This server has {left} left of its {of}"),
            (budget.member_monthly, month, requester.user_id, "You have {left} left of your {of}"),
            (budget.member_daily, day, requester.user_id, "You have {left} left of your {of}"),
        ]
        for limit, period, user_id, words in checks:
            if limit is None or (user_id is None and words.startswith("You")):
                continue
            spent = await self.store.spend.committed(
                guild_id=requester.guild_id,
                since=period.start.timestamp(),
                until=period.end.timestamp(),
                user_id=user_id,
            )
            left = max(limit - spent, ZERO)
            if left <= 0 or (price is not None and price > left):
                when = "today" if period.name == "today" else f"for {period.name}"
                cost = f"about {usd(price)}" if price is not None else "an unknown amount"
                text = words.format(left=usd(left), of=usd(limit))
                return Refusal(f"{text} {when}; this job costs {cost}.", period.end.timestamp())
        return None

    async def crossings(self, guild_id: int, *, now: float) -> list[Crossing]:
        """Thresholds of the server's monthly budget reached this month (costs known, plus the
        estimates of jobs still running) and not announced yet; each is marked announced as it
        is returned."""
        budget: Budget = await self.store.spend.budget(guild_id)
        if budget.server_monthly is None or budget.alerts_channel_id is None:
            return []
        month = month_of(now)
        spent = await self.store.spend.committed(
            guild_id=guild_id, since=month.start.timestamp(), until=month.end.timestamp()
        )
        found: list[Crossing] = []
        reached = [t for t in THRESHOLDS if spent * 100 >= budget.server_monthly * t]
        if not reached:
            return []
        told = await self.store.spend.alerted(guild_id, month.key)
        for threshold in (t for t in reached if t not in told):
            if await self.store.spend.mark_alert(guild_id, month.key, threshold):
                found.append(
                    Crossing(
                        guild_id,
                        budget.alerts_channel_id,
                        threshold,
                        spent,
                        budget.server_monthly,
                        month,
                    )
                )
        # Only the highest new one is worth a message: a jump from 40 % to 90 % says 80 %.
        return found[-1:]
