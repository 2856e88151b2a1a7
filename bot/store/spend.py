"""SQL for money: kept prices, budgets, alert marks, spend and usage. Amounts in picodollars."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiosqlite

from bot.catalog.pricing import ModelPricing
from bot.money import from_pico, to_pico
from bot.store.batch import WriteBatcher
from bot.store.recent import Recent
from bot.store.windows import member_since
from bot.wiro.types import price_rules

#: How far back (in jobs of every model) a past cost is looked for.
PAST_COST_JOBS = 5000

#: A job's weight against a budget: its cost once known, else its estimate while it may still
#: cost something (waiting or at Wiro), else nothing (it ended without reaching Wiro).
_CHARGE = (
    "CASE WHEN cost_pico IS NOT NULL THEN cost_pico"
    " WHEN status IN ('succeeded', 'failed', 'cancelled', 'timed_out') THEN 0"
    " ELSE COALESCE(estimate_pico, 0) END"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Jobs that count in usage: not those cancelled before they reached Wiro.
_COUNTED = "NOT (status = 'cancelled' AND task_id IS NULL)"


@dataclass(frozen=True, slots=True)
class Budget:
    """A server's budgets in dollars (None: none) and its alerts channel."""

    guild_id: int
    server_monthly: Decimal | None = None
    member_daily: Decimal | None = None
    member_monthly: Decimal | None = None
    alerts_channel_id: int | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Jobs and spend of one model on one UTC day."""

    day: str  # YYYY-MM-DD
    model: str
    jobs: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class MemberUsage:
    user_id: int | None  # None: the command line
    jobs: int
    cost: Decimal


@dataclass(frozen=True, slots=True)
class Usage:
    """Spend summed exactly by day and model, and by member."""

    days: tuple[UsageRow, ...] = ()
    members: tuple[MemberUsage, ...] = ()

    @property
    def total(self) -> Decimal:
        return sum((r.cost for r in self.days), Decimal(0))

    @property
    def jobs(self) -> int:
        return sum(r.jobs for r in self.days)

    def by_member(self) -> list[tuple[int | None, Decimal, int]]:
        """(member, spend, jobs), most spent first."""
        ranked = sorted(self.members, key=lambda m: (-m.cost, -m.jobs))
        return [(m.user_id, m.cost, m.jobs) for m in ranked]

    def by_model(self) -> list[tuple[str, Decimal, int]]:
        """(model, spend, jobs), most spent first."""
        return _summed(self.days, "model", ranked=True)

    def by_day(self) -> list[tuple[str, Decimal, int]]:
        """(YYYY-MM-DD, spend, jobs), in date order."""
        return _summed(self.days, "day", ranked=False)


def _summed(
    rows: tuple[UsageRow, ...], key: str, *, ranked: bool
) -> list[tuple[str, Decimal, int]]:
    money: dict[str, Decimal] = {}
    jobs: dict[str, int] = {}
    for row in rows:
        k = str(getattr(row, key))
        money[k] = money.get(k, Decimal(0)) + row.cost
        jobs[k] = jobs.get(k, 0) + row.jobs
    keys = sorted(money, key=lambda k: (-money[k], k)) if ranked else sorted(money)
    return [(k, money[k], jobs[k]) for k in keys]


class SpendRepository:
    def __init__(self, conn: aiosqlite.Connection, writes: WriteBatcher | None = None) -> None:
        self._conn = conn
        self._writes = writes or WriteBatcher(conn)  # retries "database is locked"
        self._recent_budgets: Recent[int, Budget] = Recent()

    # -- kept prices (bot.catalog.pricing.PriceCache) -----------------------------------------

    async def all_pricing(self) -> dict[str, ModelPricing]:
        async with self._conn.execute(
            "SELECT slug, dynamicprice, approximate, fetched_at FROM model_pricing"
        ) as cursor:
            rows = await cursor.fetchall()
        return {
            row[0]: ModelPricing(
                tuple(price_rules(row[1])),
                Decimal(row[2]) if row[2] else None,
                float(row[3]),
            )
            for row in rows
        }

    async def put_pricing(self, slug: str, pricing: ModelPricing) -> None:
        rules = [
            {
                "inputs": rule.inputs,
                "price": str(rule.price),
                "priceMethod": rule.method,
                **({"priceExtra": str(rule.extra)} if rule.extra is not None else {}),
            }
            for rule in pricing.rules
        ]
        await self._writes.write(
            (
                "INSERT INTO model_pricing (slug, dynamicprice, approximate, fetched_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (slug) DO UPDATE SET"
                " dynamicprice = excluded.dynamicprice, approximate = excluded.approximate,"
                " fetched_at = excluded.fetched_at",
                (
                    slug.lower(),
                    json.dumps(rules),
                    None if pricing.approximate is None else str(pricing.approximate),
                    pricing.fetched_at or time.time(),
                ),
            )
        )

    # -- past costs (bot.catalog.pricing.PastCosts) -------------------------------------------

    async def median_cost(self, model: str, pixels: int, *, recent: int = 25) -> Decimal | None:
        """Median cost of this model's recent successful jobs whose output pixels (width x
        height x samples) are within a factor 1.5 of `pixels`: among the bot's last
        `PAST_COST_JOBS` jobs, a rowid range. An index of every priced job for this cost 35
        bytes a job (a third of the history's size target), and it is asked only for a model
        Wiro gives no price for."""
        async with self._conn.execute(
            "SELECT cost_pico FROM jobs WHERE id > (SELECT coalesce(max(id), 0) FROM jobs) - ?"
            " AND model = ? AND status = 'succeeded' AND cost_pico > 0"
            " AND pixels BETWEEN ? AND ? ORDER BY id DESC LIMIT ?",
            # Whole bounds (pixels is an integer column): the same rows, and PostgreSQL
            # binds an integer parameter only from an int.
            (PAST_COST_JOBS, model, math.ceil(pixels / 1.5), math.floor(pixels * 1.5), recent),
        ) as cursor:
            costs = sorted(int(row[0]) for row in await cursor.fetchall())
        if not costs:
            return None
        middle = len(costs) // 2
        pico = costs[middle] if len(costs) % 2 else (costs[middle - 1] + costs[middle]) // 2
        return from_pico(pico)

    # -- budgets --------------------------------------------------------------------------------

    async def recent_budget(self, guild_id: int) -> Budget:
        """A server's budgets as read at most `RECENT` seconds ago (this process's own
        changes at once): whether a budget applies at all, on every /imagine."""
        return await self._recent_budgets.read(guild_id, lambda: self.budget(guild_id))

    async def budget(self, guild_id: int) -> Budget:
        async with self._conn.execute(
            "SELECT server_monthly_pico, member_daily_pico, member_monthly_pico,"
            " alerts_channel_id FROM guild_budgets WHERE guild_id = ?",
            (guild_id,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return Budget(guild_id)
        return Budget(
            guild_id,
            _dollars(row[0]),
            _dollars(row[1]),
            _dollars(row[2]),
            row[3],
        )

    async def save_budget(self, budget: Budget) -> None:
        await self._writes.write(
            (
                "INSERT INTO guild_budgets (guild_id, server_monthly_pico, member_daily_pico,"
                " member_monthly_pico, alerts_channel_id) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (guild_id) DO UPDATE SET"
                " server_monthly_pico = excluded.server_monthly_pico,"
                " member_daily_pico = excluded.member_daily_pico,"
                " member_monthly_pico = excluded.member_monthly_pico,"
                " alerts_channel_id = excluded.alerts_channel_id",
                (
                    budget.guild_id,
                    _pico(budget.server_monthly),
                    _pico(budget.member_daily),
                    _pico(budget.member_monthly),
                    budget.alerts_channel_id,
                ),
            )
        )
        self._recent_budgets.forget(budget.guild_id)  # after the commit: no read keeps the old

    async def alerts_channels(self) -> dict[int, int]:
        """Every server's alerts channel, by server."""
        async with self._conn.execute(
            "SELECT guild_id, alerts_channel_id FROM guild_budgets"
            " WHERE alerts_channel_id IS NOT NULL"
        ) as cursor:
            return {int(row[0]): int(row[1]) for row in await cursor.fetchall()}

    async def committed(
        self, *, guild_id: int, since: float, until: float, user_id: int | None = None
    ) -> Decimal:
        """What a server's (or one member's) jobs created in [since, until) cost or may cost:
        known costs, plus estimates of jobs still waiting or at Wiro."""
        window, params = (
            ("guild_id = ? AND created_at >= ? AND created_at < ?", (guild_id, since, until))
            if user_id is None
            else member_since(guild_id, user_id, since, until)
        )
        async with self._conn.execute(
            f"SELECT COALESCE(SUM({_CHARGE}), 0) FROM jobs WHERE {window}", params
        ) as cursor:
            row = await cursor.fetchone()
        return from_pico(int(row[0])) if row else Decimal(0)

    async def alerted(self, guild_id: int, month: str) -> set[int]:
        """The thresholds already announced this month."""
        async with self._conn.execute(
            "SELECT threshold FROM budget_alerts WHERE guild_id = ? AND month = ?",
            (guild_id, month),
        ) as cursor:
            return {int(row[0]) for row in await cursor.fetchall()}

    async def mark_alert(self, guild_id: int, month: str, threshold: int) -> bool:
        """Record that a threshold's alert goes out; False when it already went this month."""
        written = await self._writes.write(
            (
                "INSERT OR IGNORE INTO budget_alerts (guild_id, month, threshold, sent_at)"
                " VALUES (?, ?, ?, ?)",
                (guild_id, month, threshold, time.time()),
            )
        )
        return written.rowcount == 1

    # -- usage ------------------------------------------------------------------------------

    async def usage(
        self, *, guild_id: int | None, since: float, user_id: int | None = None
    ) -> Usage:
        """Jobs and spend by UTC day and model, and by member. `guild_id` None: every job, the
        command line's too."""
        clauses = [_COUNTED]
        params: list[object] = []
        if user_id is not None and guild_id is not None:
            window, member = member_since(guild_id, user_id, since)
            clauses.append(window)
            params.extend(member)
        else:
            clauses.append("created_at >= ?")
            params.append(since)
            for column, value in (("guild_id", guild_id), ("user_id", user_id)):
                if value is not None:
                    clauses.append(f"{column} = ?")
                    params.append(value)
        where = " AND ".join(clauses)
        # UTC day numbers group faster than date strings; they are named below.
        async with self._conn.execute(
            "SELECT CAST(created_at / 86400 AS INTEGER) AS day, model, COUNT(*),"
            f" COALESCE(SUM(cost_pico), 0) FROM jobs WHERE {where} GROUP BY day, model",
            params,
        ) as cursor:
            days = [
                UsageRow(_date(row[0]), row[1], int(row[2]), from_pico(int(row[3])))
                for row in await cursor.fetchall()
            ]
        async with self._conn.execute(
            f"SELECT user_id, COUNT(*), COALESCE(SUM(cost_pico), 0) FROM jobs WHERE {where}"
            " GROUP BY user_id",
            params,
        ) as cursor:
            members = [
                MemberUsage(row[0], int(row[1]), from_pico(int(row[2])))
                for row in await cursor.fetchall()
            ]
        return Usage(tuple(days), tuple(members))


def _date(day: int) -> str:
    return (_EPOCH + timedelta(days=int(day))).strftime("%Y-%m-%d")


def _dollars(pico: int | None) -> Decimal | None:
    return None if pico is None else from_pico(int(pico))


def _pico(amount: Decimal | None) -> int | None:
    return None if amount is None else to_pico(amount)
