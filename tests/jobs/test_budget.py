"""Budgets in the engine: refused before any Wiro call, estimates reserved while jobs wait or
run, UTC days and months."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.jobs.budget import Budgets, day_of, month_of
from bot.jobs.engine import BudgetExceeded, JobEngine, JobRefused
from bot.jobs.job import JobState, Requester
from bot.store import NewJob, Store
from bot.store.spend import Budget
from tests.jobs.conftest import ALICE, BOB, finished, request
from tests.wiro_standin import WiroStandIn

GUILD = ALICE.guild_id
assert GUILD is not None


async def budget(store: Store, **dollars: str) -> None:
    await store.spend.save_budget(
        Budget(GUILD, **{k: Decimal(v) for k, v in dollars.items()})  # type: ignore[arg-type]
    )


@pytest.fixture
async def priced(engine: JobEngine) -> JobEngine:
    """The engine with Tool/Detail's prices read: the stand-in's cpo $0.003 an image."""
    assert await engine.prices.refresh() == []
    return engine


async def test_a_burst_admits_only_what_the_budget_has_left(
    priced: JobEngine, store: Store, wiro: WiroStandIn
) -> None:
    wiro.hold()
    await budget(store, server_monthly="0.01")
    # Every request passes the early check at once; storing them is what is serialised.
    prepared = await asyncio.gather(*(priced.prepare(request(samples=1)) for _ in range(8)))
    outcomes = await asyncio.gather(*(priced.submit(p) for p in prepared), return_exceptions=True)
    admitted = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BudgetExceeded)]
    assert (len(admitted), len(refused)) == (3, 5)  # 3 x $0.003 fits in $0.01; a 4th does not
    assert all(isinstance(r, JobRefused) for r in refused)
    assert str(refused[0]).startswith("This server has $0.0010 left of its $0.01 for ")


async def test_a_job_that_ends_without_cost_frees_its_reservation(
    priced: JobEngine, store: Store, wiro: WiroStandIn
) -> None:
    await budget(store, member_daily="0.003")
    wiro.next_outcome("failed")
    with priced.subscribe() as events:
        job = await priced.submit(request(samples=1))
        assert job.estimate == Decimal("0.003")
        with pytest.raises(BudgetExceeded):
            await priced.prepare(request(samples=1))  # reserved while it runs
        done = await finished(events, job.id)
    assert done.status is JobState.FAILED and done.cost == 0
    await priced.prepare(request(samples=1))  # failed tasks cost nothing: room again


async def test_command_line_jobs_have_no_budget(priced: JobEngine, store: Store) -> None:
    await budget(store, server_monthly="0.01")
    cli = Requester(source="cli")
    for _ in range(5):
        await priced.prepare(request(samples=4, who=cli))


async def test_periods_are_utc_calendar_days_and_months(store: Store) -> None:
    budgets = Budgets(store)
    await budget(store, server_monthly="1", member_daily="0.5")
    last_second = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC).timestamp()
    first_second = datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    assert month_of(last_second).name == "November"
    assert month_of(first_second).start.timestamp() == first_second
    assert day_of(last_second).end.timestamp() == first_second

    job = await store.jobs.create(
        NewJob(
            model="m/x",
            prompt="p",
            inputs={},
            seed=1,
            requester=BOB,
            created_at=last_second - 10,
        )
    )
    await store.jobs.update(job.id, status=JobState.SUCCEEDED, cost=Decimal("0.99"), task_id="1")

    refusal = await budgets.check(ALICE, Decimal("0.02"), now=last_second)
    assert refusal is not None
    assert refusal.message == (
        "This server has $0.01 left of its $1.00 for November; this job costs about $0.02."
    )
    assert refusal.renews_at == first_second
    # The month rolls over at midnight UTC: December starts with the whole budget.
    assert await budgets.check(ALICE, Decimal("0.02"), now=first_second) is None
    # Bob's own day: $0.99 spent of his $0.50 a day; tomorrow (and next month) is new.
    bob_refused = await budgets.check(BOB, Decimal("0.001"), now=last_second)
    assert bob_refused is not None
    assert bob_refused.message == (
        "You have $0.00 left of your $0.50 today; this job costs about $0.0010."
    )
    assert bob_refused.renews_at == first_second
    assert await budgets.check(BOB, Decimal("0.001"), now=first_second) is None


async def test_a_job_of_unknown_price_runs_while_something_is_left(store: Store) -> None:
    budgets = Budgets(store)
    await budget(store, server_monthly="0.01")
    now = datetime(2026, 11, 15, tzinfo=UTC).timestamp()
    assert await budgets.check(ALICE, None, now=now) is None
    job = await store.jobs.create(
        NewJob(model="m/x", prompt="p", inputs={}, seed=1, requester=BOB, created_at=now - 5)
    )
    await store.jobs.update(job.id, status=JobState.SUCCEEDED, cost=Decimal("0.01"), task_id="1")
    refusal = await budgets.check(ALICE, None, now=now)
    assert refusal is not None
    assert refusal.message == (
        "This server has $0.00 left of its $0.01 for November; this job costs an unknown amount."
    )
