"""Spend summed exactly by member, model and UTC day, for /usage and `wirobot usage`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bot.jobs.budget import month_of
from bot.money import ZERO
from bot.store.spend import UsageRow

PERIODS = ("today", "week", "month", "all")


def period_start(period: str, now: float) -> float:
    """The first second of a period, UTC: today, the last 7 days, this month, or all time."""
    today = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "today":
        return today.timestamp()
    if period == "week":
        return (today - timedelta(days=6)).timestamp()
    if period == "month":
        return month_of(now).start.timestamp()
    return 0.0


def period_words(period: str, now: float) -> str:
    return {
        "today": "today (UTC)",
        "week": "the last 7 days",
        "month": month_of(now).start.strftime("%B %Y"),
    }.get(period, "all time")


@dataclass(frozen=True, slots=True)
class Usage:
    """Usage rows summed (exactly) by member, model and day."""

    rows: tuple[UsageRow, ...]

    @property
    def total(self) -> Decimal:
        return sum((r.cost for r in self.rows), ZERO)

    @property
    def jobs(self) -> int:
        return sum(r.jobs for r in self.rows)

    def by(self, key: str) -> list[tuple[object, Decimal, int]]:
        """(key, spend, jobs), most spent first (by day: in date order)."""
        money: dict[object, Decimal] = defaultdict(lambda: ZERO)
        jobs: dict[object, int] = defaultdict(int)
        for row in self.rows:
            k = getattr(row, key)
            money[k] += row.cost
            jobs[k] += row.jobs
        keys = sorted(money, key=str) if key == "day" else sorted(money, key=lambda k: -money[k])
        return [(k, money[k], jobs[k]) for k in keys]
