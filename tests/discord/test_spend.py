"""Money as server admins and members see it: budgets, refusals with the numbers, alerts at
50/80/100 %, the Wiro balance alert, and /usage with its chart."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

import discord
import pytest
from simcord.actors import MemberActor
from simcord.builders import ChannelHandle

from bot.discord_views.spend import BalanceAlert, announce_crossings
from bot.jobs.budget import month_of
from bot.jobs.gate import Backoff
from bot.jobs.job import JobState, Requester
from bot.store import NewJob
from cogs.usage import ALERT_INTERVAL
from tests.discord.conftest import Harness

PORTRAIT = "wavymulder/portraitplus"  # the stand-in prices it cpo $0.003 an image


@pytest.fixture
def admin(harness: Harness) -> MemberActor:
    h = harness
    role = h.guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True))
    return h.guild.add_member(h.env.create_user("ada"), roles=[role])


@pytest.fixture
def alerts(harness: Harness) -> ChannelHandle:
    return harness.guild.create_text_channel("budget-alerts")


async def say(h: Harness, who: MemberActor, command: str, **options: object) -> str:
    result = await who.slash(h.channel, command, **options)
    assert result.ephemeral
    return h.message(result).content


def renews(when: float) -> int:
    return int(month_of(when).end.timestamp())


def texts(channel: ChannelHandle) -> list[str]:
    return [m.content for m in channel.history()]


async def look_for_alerts(h: Harness) -> None:
    """Let the bot's budget watch take its next look (virtual time)."""
    await h.env.advance_time(ALERT_INTERVAL)


async def spent_before(h: Harness, cost: str, *, created_at: float, user_id: int) -> None:
    """A finished job of this server, as if run earlier."""
    job = await h.runtime.store.jobs.create(
        NewJob(
            model=PORTRAIT,
            prompt="earlier",
            inputs={"prompt": "earlier", "seed": 1, "samples": 1},
            seed=1,
            requester=Requester(user_id=user_id, guild_id=h.guild.id),
            created_at=created_at,
        )
    )
    await h.runtime.store.jobs.update(
        job.id, status=JobState.SUCCEEDED, cost=Decimal(cost), task_id="earlier"
    )


# -- /settings budget ---------------------------------------------------------------------------


async def test_an_admin_sets_and_clears_budgets_in_dollars(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    text = await say(
        h, admin, "settings budget", server_monthly=20, member_daily=0.5, member_monthly=5
    )
    month = month_of(time.time()).name
    assert text == (
        "**Budgets on this server (saved)**\n"
        f"Server per month: $20.00 ($0.00 spent or running in {month})\n"
        "Each member per day: $0.50\n"
        "Each member per month: $5.00\n"
        "Alerts at 50 %, 80 % and 100 % need a channel: `/settings alerts`."
    )
    text = await say(h, admin, "settings budget", member_daily=0)
    assert "Each member per day: none" in text
    budget = await h.runtime.store.spend.budget(h.guild.id)
    assert (budget.server_monthly, budget.member_daily, budget.member_monthly) == (
        Decimal("20.00"),
        None,
        Decimal("5.00"),
    )


async def test_members_without_manage_server_cannot_set_budgets(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    command = h.env.backend.find_command("settings", None)
    assert command is not None
    h.guild.set_command_permissions(int(command["id"]), {h.bob: True})
    text = await say(h, h.bob, "settings budget", server_monthly=1000)
    assert text.startswith("Only members with **Manage Server**")
    assert (await h.runtime.store.spend.budget(h.guild.id)).server_monthly is None


# -- refusals -------------------------------------------------------------------------------------


async def test_a_job_past_the_servers_monthly_budget_is_refused_with_the_numbers(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    await say(h, admin, "settings budget", server_monthly=0.01)
    first = await h.alice.slash(h.channel, "imagine", prompt="one", model=PORTRAIT, samples=2)
    assert not first.ephemeral  # $0.006 of $0.01: it runs
    await h.queued(await h.last_job())
    assert len(h.wiro.runs) == 1

    refused = await h.bob.slash(h.channel, "imagine", prompt="two", model=PORTRAIT, samples=2)

    now = time.time()
    assert refused.ephemeral
    assert h.message(refused).content == (
        f"This server has $0.0040 left of its $0.01 for {month_of(now).name}; this job costs "
        f"about $0.0060. The budget renews <t:{renews(now)}:R>."
    )
    assert await h.job_count() == 1
    await asyncio.sleep(0.05)
    assert len(h.wiro.runs) == 1  # the refused job never reached Wiro


async def test_a_members_daily_budget_counts_only_their_jobs_of_today(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    await say(h, admin, "settings budget", member_daily=0.01)
    yesterday = time.time() - 86_400
    await spent_before(h, "5", created_at=yesterday, user_id=h.alice.id)  # another day
    await spent_before(h, "0.008", created_at=time.time(), user_id=h.alice.id)

    refused = await h.alice.slash(h.channel, "imagine", prompt="a", model=PORTRAIT, samples=1)
    assert h.message(refused).content.startswith(
        "You have $0.0020 left of your $0.01 today; this job costs about $0.0030."
    )
    allowed = await h.bob.slash(h.channel, "imagine", prompt="b", model=PORTRAIT, samples=1)
    assert not allowed.ephemeral


async def test_a_members_monthly_budget_counts_their_month_in_every_channel(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    await say(h, admin, "settings budget", member_monthly=1)
    start = month_of(time.time()).start.timestamp()
    await spent_before(h, "0.999", created_at=start + 1, user_id=h.alice.id)

    refused = await h.alice.slash(h.nsfw_channel, "imagine", prompt="a", model=PORTRAIT)
    now = time.time()
    assert h.message(refused).content == (
        f"You have $0.0010 left of your $1.00 for {month_of(now).name}; this job costs about "
        f"$0.01. The budget renews <t:{renews(now)}:R>."
    )


async def test_last_months_spend_does_not_count_this_month(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    await say(h, admin, "settings budget", server_monthly=0.01)
    start = month_of(time.time()).start.timestamp()
    await spent_before(h, "9.99", created_at=start - 1, user_id=h.bob.id)  # last month
    result = await h.alice.slash(h.channel, "imagine", prompt="a", model=PORTRAIT, samples=1)
    assert not result.ephemeral


async def test_jobs_still_waiting_or_running_count_with_their_estimate(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    await say(h, admin, "settings budget", server_monthly=0.01)
    await spent_before(h, "0.001", created_at=time.time(), user_id=h.bob.id)
    # $0.009 left; each job costs about $0.003 and none has finished: three fit.
    members = [h.guild.add_member(h.env.create_user(f"m{i}")) for i in range(5)]
    results = [
        await m.slash(h.channel, "imagine", prompt=f"p{i}", model=PORTRAIT, samples=1)
        for i, m in enumerate(members)
    ]
    assert [r.ephemeral for r in results] == [False, False, False, True, True]
    assert h.message(results[3]).content.startswith("This server has $0.00 left of its $0.01 for ")
    committed = await h.runtime.store.spend.committed(
        guild_id=h.guild.id, since=0, until=time.time() + 10
    )
    assert committed == Decimal("0.010")


# -- alerts --------------------------------------------------------------------------------------


async def test_alerts_go_once_per_threshold_per_month(
    harness: Harness, admin: MemberActor, alerts: ChannelHandle
) -> None:
    h = harness
    text = await say(h, admin, "settings alerts", channel=alerts)
    assert text.startswith("Alerts go to <#")
    await say(h, admin, "settings budget", server_monthly=0.01)
    month = month_of(time.time()).name

    result = await h.alice.slash(h.channel, "imagine", prompt="a", model=PORTRAIT, samples=2)
    assert not result.ephemeral
    await h.finish(await h.last_job())  # costs $0.006: 60 %
    await look_for_alerts(h)
    assert texts(alerts) == [
        f"This server has spent $0.0060 of its $0.01 budget for {month} (50 %)."
    ]

    # Raise the budget a little: 0.006 + 0.003 = 0.009 of 0.01 is 90 %: the 80 % alert.
    await h.bob.slash(h.channel, "imagine", prompt="b", model=PORTRAIT, samples=1)
    await h.finish(await h.last_job())
    await look_for_alerts(h)
    assert texts(alerts)[-1] == (
        f"This server has spent $0.0090 of its $0.01 budget for {month} (80 %)."
    )

    # Another job of the same size would pass 100 %: refused, and no alert repeats.
    refused = await h.bob.slash(h.channel, "imagine", prompt="c", model=PORTRAIT, samples=1)
    assert refused.ephemeral
    await asyncio.sleep(0.05)
    assert len(texts(alerts)) == 2


async def test_the_hundred_percent_alert_says_when_the_budget_renews(
    harness: Harness, admin: MemberActor, alerts: ChannelHandle
) -> None:
    h = harness
    await say(h, admin, "settings alerts", channel=alerts)
    await say(h, admin, "settings budget", server_monthly=0.01)
    await spent_before(h, "0.012", created_at=time.time(), user_id=h.bob.id)
    assert await announce_crossings(h.bot, h.guild.id) == 1
    assert await announce_crossings(h.bot, h.guild.id) == 0  # once per threshold per month
    now = time.time()
    assert texts(alerts) == [
        f"This server has spent $0.01 of its $0.01 budget for {month_of(now).name} (100 %). "
        f"New jobs are refused until the budget renews <t:{renews(now)}:R>, or an admin "
        "raises it with `/settings budget`."
    ]
    # Next month the same threshold alerts again.
    next_month = month_of(now).end.timestamp() + 60
    await spent_before(h, "0.02", created_at=next_month, user_id=h.bob.id)
    assert await announce_crossings(h.bot, h.guild.id, now=next_month) == 1


async def test_alerts_need_a_channel_the_bot_can_post_in(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    me = h.guild.me
    assert me is not None
    closed = h.guild.create_text_channel(
        "closed", overwrites={me: discord.PermissionOverwrite(send_messages=False)}
    )
    text = await say(h, admin, "settings alerts", channel=closed)
    assert text == (
        f"I can't post in <#{closed.id}>: I'm missing View Channel or Send Messages there. "
        "Grant them, or choose another channel."
    )
    assert (await h.runtime.store.spend.budget(h.guild.id)).alerts_channel_id is None
    text = await say(h, admin, "settings alerts")
    assert text.startswith("No more alerts")


async def test_wiros_balance_alert_goes_once_per_pause(
    harness: Harness, admin: MemberActor, alerts: ChannelHandle
) -> None:
    h = harness
    await say(h, admin, "settings alerts", channel=alerts)
    balance = getattr(h.bot.get_cog("Usage"), "balance", None)
    assert isinstance(balance, BalanceAlert)

    assert await balance.paused("Insufficient balance.") == 1
    assert await balance.paused("Insufficient balance.") == 0
    balance.resumed()
    assert await balance.paused() == 1

    said = texts(alerts)
    assert len(said) == 2
    assert said[0].startswith(
        "**Wiro's balance is too low**: Wiro refused a job for lack of funds "
        "(Insufficient balance.). New jobs wait instead of failing"
    )
    assert "wiro.ai → your project → billing" in said[0]
    assert h.wiro.api_key not in said[0]


async def test_a_refused_balance_pauses_jobs_with_one_alert_and_they_resume_by_themselves(
    harness: Harness, admin: MemberActor, alerts: ChannelHandle
) -> None:
    h = harness
    await say(h, admin, "settings alerts", channel=alerts)
    h.runtime.engine.gate.balance_backoff = Backoff(0.05, 0.1)
    h.wiro.fail_always("run", "code97")
    await h.alice.slash(h.channel, "imagine", prompt="a ship")
    first = await h.last_job()
    await h.bob.slash(h.channel, "imagine", prompt="a boat")
    second = await h.last_job()
    for job in (first, second):
        waiting = await h.until(job.id, lambda j: j.waiting_for is not None)
        assert waiting.status is JobState.WAITING
    async with asyncio.timeout(10):
        while not texts(alerts):  # noqa: ASYNC110 - the alert is posted by a background task
            await asyncio.sleep(0.01)
    # Probes go on while Wiro refuses; the alert was said once, not once per job or probe.
    runs = h.wiro.calls["run"]
    await h.until(first.id, lambda j: h.wiro.calls["run"] > runs + 2)
    assert len(texts(alerts)) == 1
    assert texts(alerts)[0].startswith("**Wiro's balance is too low**")

    h.wiro.stop_failing("run")
    # Both go on by themselves, one after the other (one job at Wiro at a time here).
    pending = {first.id, second.id}
    while pending:
        await h.until(first.id, lambda _: bool(sent_to_wiro(h, pending)))
        job_id = min(sent_to_wiro(h, pending))
        job = await h.runtime.engine.get(job_id)
        assert job is not None
        assert (await h.finish(job)).status is JobState.SUCCEEDED
        pending.discard(job_id)
    assert h.runtime.engine.submissions_paused is None
    assert len(texts(alerts)) == 1


def sent_to_wiro(h: Harness, job_ids: set[int]) -> set[int]:
    """Those of these jobs the engine holds that Wiro has a task for."""
    live = (h.runtime.engine.peek(job_id) for job_id in job_ids)
    return {job.id for job in live if job is not None and job.task_id is not None}


# -- /usage ----------------------------------------------------------------------------------------


async def test_usage_shows_my_spend_by_model_and_day_with_a_chart(harness: Harness) -> None:
    h = harness
    await h.alice.slash(h.channel, "imagine", prompt="a", model=PORTRAIT, samples=2)
    await h.finish(await h.last_job())
    await h.bob.slash(h.channel, "imagine", prompt="b", model=PORTRAIT, samples=1)
    await h.finish(await h.last_job())

    result = await h.alice.slash(h.channel, "usage", period="today")

    assert result.ephemeral
    message = h.message(result)
    embed = message.embeds[0]
    assert embed.title == "Your spend on this server: today (UTC)"
    assert embed.description == "**$0.0060** for 1 job."
    fields = {f.name: f.value for f in embed.fields}
    assert "By member" not in fields
    assert fields["By model"] == "Portrait+: $0.0060 · 1 job"
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert fields["By day (UTC)"] == f"{today}: $0.0060 · 1 job"
    assert [a.filename for a in message.attachments] == ["usage.png"]
    assert embed.image.url is not None and embed.image.url.endswith("usage.png")


async def test_usage_of_the_server_is_for_admins(harness: Harness, admin: MemberActor) -> None:
    h = harness
    await h.alice.slash(h.channel, "imagine", prompt="a", model=PORTRAIT, samples=1)
    await h.finish(await h.last_job())
    await h.bob.slash(h.channel, "imagine", prompt="b", model=PORTRAIT, samples=2)
    await h.finish(await h.last_job())

    refused = await h.alice.slash(h.channel, "usage", scope="server")
    assert h.message(refused).content.startswith("Only members with **Manage Server**")

    result = await admin.slash(h.channel, "usage", scope="server", period="all")
    embed = h.message(result).embeds[0]
    assert embed.title == "This server's spend: all time"
    assert embed.description == "**$0.0090** for 2 jobs."
    fields = {f.name: f.value for f in embed.fields}
    assert fields["By member"] == (
        f"<@{h.bob.id}>: $0.0060 · 1 job\n<@{h.alice.id}>: $0.0030 · 1 job"
    )


async def test_usage_with_no_jobs_says_so_without_a_chart(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "usage")
    message = h.message(result)
    assert message.embeds[0].description == "No jobs in this period."
    assert message.attachments == []
