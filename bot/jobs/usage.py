"""The periods of /usage and `wirobot usage`: UTC days and calendar months."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.jobs.budget import month_of

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
