"""Every repository, on SQLite and on PostgreSQL alike: what is stored reads back the same,
compare-and-set claims hold, sums are exact."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.jobs.job import JobState, Output, Requester
from bot.store import Claim, GuildSettings, NewJob, RunLimits, Store, StoredFile
from bot.store import spend as spend_module
from bot.store.spend import Budget
from tests.conftest import open_store

GUILD = 884_390_127_593_472_011  # Discord ids need 64 bits
ALICE = Requester(user_id=741_852_963_852_741_963, guild_id=GUILD, channel_id=1000)
CLI = Requester(source="cli")


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    async with await open_store(database) as store:
        yield store


async def new_job(store: Store, prompt: str = "a cat", who: Requester = ALICE, **kw: object) -> int:
    job = await store.jobs.create(
        NewJob(
            model="m/one",
            prompt=prompt,
            inputs={"prompt": prompt, "width": 512, "height": 512, "seed": 3},
            seed=3,
            requester=who,
            created_at=kw.pop("created_at", time.time()),  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )
    )
    return job.id


async def test_a_job_reads_back_with_its_outputs_and_64_bit_ids(store: Store) -> None:
    job_id = await new_job(store, estimate=Decimal("0.0125"))
    await store.jobs.finish(
        job_id,
        [Output(0, "a.png", "image/png", 10, "https://x/a.png", "/o/a.png", 512, 512)],
        status=JobState.SUCCEEDED,
        cost="0.012345678901",
        finished_at=time.time(),
        status_message_id=1_234_567_890_123_456_789,
    )
    job = await store.jobs.get(job_id)
    assert job is not None and job.status is JobState.SUCCEEDED
    assert job.requester == ALICE
    assert job.inputs == {"prompt": "a cat", "width": 512, "height": 512, "seed": 3}
    assert job.cost == Decimal("0.012345678901") and job.estimate == Decimal("0.0125")
    assert job.status_message_id == 1_234_567_890_123_456_789
    assert [o.path for o in job.outputs] == ["/o/a.png"]

    # Finishing again replaces the outputs instead of failing.
    await store.jobs.finish(
        job_id, [Output(0, "b.png", "image/png", 11, "https://x/b.png")], status=JobState.SUCCEEDED
    )
    again = await store.jobs.get(job_id)
    assert again is not None and [o.name for o in again.outputs] == ["b.png"]


async def test_claims_within_limits_count_every_process_jobs_at_wiro(store: Store) -> None:
    # Two of the server's jobs are at Wiro (one process's or another's: the store counts).
    bob = Requester(user_id=2, guild_id=GUILD, channel_id=1000)
    carol = Requester(user_id=3, guild_id=GUILD + 1, channel_id=2000)
    for who in (ALICE, bob):
        held = await new_job(store, who=who, status=JobState.WAITING)
        now = time.time()
        assert await store.jobs.claim_run(held, "elsewhere", submitted_at=now, until=now + 30)
    assert await store.jobs.active_counts(guild_id=GUILD, user_id=ALICE.user_id) == (2, 2, 1)

    async def claim(who: Requester, limits: RunLimits, owner: str = "here") -> Claim:
        job_id = await new_job(store, who=who, status=JobState.WAITING)
        now = time.time()
        return await store.jobs.claim_run_within(
            job_id,
            owner,
            submitted_at=now,
            until=now + 30,
            limits=limits,
            guild_id=who.guild_id,
            user_id=who.user_id,
        )

    assert await claim(ALICE, RunLimits(2, 8, 8)) is Claim.FULL
    assert await claim(ALICE, RunLimits(8, 2, 8)) is Claim.GUILD_FULL
    assert await claim(ALICE, RunLimits(8, 8, 1)) is Claim.MEMBER_FULL
    assert await claim(carol, RunLimits(8, 2, 1)) is Claim.RUN  # another server, another member
    assert await claim(ALICE, RunLimits(8, 8, 2)) is Claim.RUN
    assert await store.jobs.active_counts(guild_id=GUILD, user_id=ALICE.user_id) == (4, 3, 2)
    # The command line's jobs have no server and no member: only the whole counts for them.
    assert await claim(CLI, RunLimits(8, 1, 1)) is Claim.RUN
    assert await claim(CLI, RunLimits(5, 1, 1)) is Claim.FULL

    # Another live process holds it: gone for this one, whatever the limits.
    now = time.time()
    theirs = await new_job(store, status=JobState.WAITING, owner="elsewhere", lease_until=now + 30)
    assert (
        await store.jobs.claim_run_within(
            theirs,
            "here",
            submitted_at=now,
            until=now + 30,
            limits=RunLimits(99, 99, 99),
            guild_id=GUILD,
            user_id=ALICE.user_id,
        )
        is Claim.GONE
    )


async def test_a_waiting_job_is_cancelled_from_any_process_and_a_running_one_asked(
    store: Store,
) -> None:
    now = time.time()
    waiting = await new_job(store, status=JobState.WAITING, owner="a", lease_until=now + 30)
    assert await store.jobs.cancel_waiting(waiting, now=now + 1)
    assert not await store.jobs.cancel_waiting(waiting, now=now + 2)  # once
    job = await store.jobs.get(waiting)
    assert job is not None and job.status is JobState.CANCELLED and job.finished_at == now + 1
    assert await store.jobs.holder(waiting) == "a"
    assert await store.jobs.holder(waiting, now=now + 60) is None  # its lease has passed

    running = await new_job(store, status=JobState.WAITING)
    assert await store.jobs.claim_run(running, "a", submitted_at=now, until=now + 30)
    assert not await store.jobs.cancel_waiting(running, now=now)  # at Wiro: not in line
    assert await store.jobs.cancels_asked("a") == set()
    assert await store.jobs.request_cancel(running)
    assert await store.jobs.cancels_asked("a") == {running}
    assert await store.jobs.cancels_asked("b") == set()
    assert [j.id for j in await store.jobs.finished_among([waiting, running])] == [waiting]


async def test_claims_give_each_job_one_owner_and_one_run(store: Store) -> None:
    job_id = await new_job(store, status=JobState.WAITING)
    now = time.time()
    assert await store.jobs.claim(job_id, "a", now=now, until=now + 30)
    assert not await store.jobs.claim(job_id, "b", now=now, until=now + 30)
    assert not await store.jobs.claim_run(job_id, "b", submitted_at=now, until=now + 30)
    assert await store.jobs.claim_run(job_id, "a", submitted_at=now, until=now + 30)
    assert not await store.jobs.claim_run(job_id, "a", submitted_at=now, until=now + 30)
    assert await store.jobs.unclaimed(now=now) == []
    # The lease passes: another process may take the job over.
    assert [j.id for j in await store.jobs.unclaimed(now=now + 60)] == [job_id]
    assert await store.jobs.claim(job_id, "b", now=now + 60, until=now + 90)
    await store.jobs.release("b")
    assert [j.id for j in await store.jobs.unclaimed(now=now)] == [job_id]
    assert await store.jobs.claim_status(job_id, JobState.SUBMITTED, JobState.RUNNING)
    assert not await store.jobs.claim_status(job_id, JobState.SUBMITTED, JobState.RUNNING)


async def test_limits_count_a_members_jobs_and_the_command_lines(store: Store) -> None:
    since = time.time() - 10
    await new_job(store)
    await new_job(store, "cli", CLI)
    assert (
        await store.jobs.count_started_since(
            user_id=ALICE.user_id or 0, guild_id=GUILD, since=since
        )
        == 1
    )
    assert (
        await store.jobs.oldest_started_since(
            user_id=ALICE.user_id or 0, guild_id=GUILD, since=since
        )
        is not None
    )
    count, _ = await store.jobs.spend(guild_id=None, since=since)  # `IS NULL` for the CLI's
    assert count == 1


async def test_a_members_windows_count_every_job_of_the_window_in_any_id_order(
    store: Store,
) -> None:
    # Member windows bound ids from below by each server day's first id (guild_days): a job
    # stored late (a higher id for an earlier time) still counts, an older one does not.
    bob = Requester(user_id=2, guild_id=GUILD, channel_id=1000)
    elsewhere = Requester(user_id=ALICE.user_id, guild_id=GUILD + 1, channel_id=1)
    now = time.time()
    since = now - 86400
    await new_job(store, created_at=now - 10 * 86400)  # before the window
    cost = {await new_job(store, created_at=now): "0.10"}
    cost[await new_job(store, created_at=since + 60)] = "0.20"  # stored after a newer job
    cost[await new_job(store, who=bob, created_at=now)] = "1.00"  # another member's
    cost[await new_job(store, who=elsewhere, created_at=now)] = "3.00"  # another server's
    for job_id, amount in cost.items():
        await store.jobs.update(job_id, status=JobState.SUCCEEDED, cost=amount, task_id="t")
    user = ALICE.user_id or 0

    assert await store.jobs.count_started_since(user_id=user, guild_id=GUILD, since=since) == 2
    assert await store.jobs.oldest_started_since(
        user_id=user, guild_id=GUILD, since=since
    ) == pytest.approx(since + 60)
    spent = await store.spend.committed(guild_id=GUILD, since=since, until=now + 1, user_id=user)
    assert spent == Decimal("0.30")
    usage = await store.spend.usage(guild_id=GUILD, since=since, user_id=user)
    assert (usage.jobs, usage.total) == (2, Decimal("0.30"))
    # A server with no job since the window began: nothing, not everything.
    assert await store.jobs.count_started_since(user_id=user, guild_id=GUILD + 2, since=0) == 0
    later = await store.jobs.oldest_started_since(user_id=user, guild_id=GUILD, since=now + 1)
    assert later is None


async def test_server_settings_and_model_defaults(store: Store) -> None:
    settings = GuildSettings(
        guild_id=GUILD,
        default_model="m/one",
        disabled_models=frozenset({"m/two"}),
        nsfw_anywhere=True,
    )
    await store.guilds.save(settings)
    await store.guilds.save(settings.with_changes(max_steps=40))
    assert await store.guilds.get(GUILD) == settings.with_changes(max_steps=40)
    await store.guilds.set_model_default(GUILD, "m/one", "steps", 20)
    await store.guilds.set_model_default(GUILD, "m/one", "steps", 25)
    await store.guilds.set_model_default(GUILD, "m/one", "scheduler", "euler")
    assert await store.guilds.model_defaults(GUILD, "m/one") == {"scheduler": "euler", "steps": 25}
    assert await store.guilds.clear_model_defaults(GUILD, "m/one", "steps") == 1
    assert await store.guilds.all_model_defaults(GUILD) == {"m/one": {"scheduler": "euler"}}


async def test_tool_details_are_kept(store: Store) -> None:
    assert await store.tools.get_tool_detail("Owner/Model") is None
    await store.tools.put_tool_detail("Owner/Model", {"a": 1})
    await store.tools.put_tool_detail("owner/model", {"a": 2})
    assert await store.tools.get_tool_detail("OWNER/model") == {"a": 2}


async def test_budgets_alerts_usage_and_past_costs(store: Store) -> None:
    await store.spend.save_budget(Budget(GUILD, Decimal("5"), None, Decimal("1.5"), 42))
    assert await store.spend.budget(GUILD) == Budget(GUILD, Decimal("5"), None, Decimal("1.5"), 42)
    assert await store.spend.alerts_channels() == {GUILD: 42}
    assert await store.spend.mark_alert(GUILD, "2026-11", 50)
    assert not await store.spend.mark_alert(GUILD, "2026-11", 50)
    assert await store.spend.alerted(GUILD, "2026-11") == {50}

    now = time.time()
    for cost in ("0.10", "0.30", "0.20"):
        job_id = await new_job(store, created_at=now)
        await store.jobs.update(job_id, status=JobState.SUCCEEDED, cost=cost)
    waiting = await new_job(store, created_at=now, estimate=Decimal("0.05"))
    assert waiting
    assert await store.spend.median_cost("m/one", 512 * 512) == Decimal("0.2")
    assert await store.spend.committed(guild_id=GUILD, since=now - 1, until=now + 1) == Decimal(
        "0.65"
    )
    usage = await store.spend.usage(guild_id=GUILD, since=now - 1)
    assert usage.total == Decimal("0.6") and usage.jobs == 4
    assert [day for day, _, _ in usage.by_day()] == [time.strftime("%Y-%m-%d", time.gmtime(now))]


async def test_retention_expires_files_and_marks_emptied_jobs(store: Store) -> None:
    job_id = await new_job(store)
    await store.jobs.finish(
        job_id,
        [
            Output(0, "a.png", "image/png", 10, "u", "/o/a.png"),
            Output(1, "b.png", "image/png", 20, "u", "/o/b.png"),
        ],
        status=JobState.SUCCEEDED,
    )
    assert await store.jobs.bytes_on_disk() == 30
    files = await store.jobs.oldest_files(10)
    assert [(f.position, f.size) for f in files] == [(0, 10), (1, 20)]
    await store.jobs.expire_files([files[0]], at=1.0)
    assert (await store.jobs.get(job_id)).outputs_expired_at is None  # type: ignore[union-attr]
    await store.jobs.expire_files([StoredFile(job_id, 1, "/o/b.png", 20, 0.0)], at=2.0)
    assert (await store.jobs.get(job_id)).outputs_expired_at == 2.0  # type: ignore[union-attr]
    assert await store.jobs.bytes_on_disk() == 0


async def test_interaction_tokens_are_forgotten_and_durations_learned(store: Store) -> None:
    job_id = await new_job(store)
    await store.jobs.update(
        job_id,
        interaction_token="tok",
        interaction_at=100.0,
        status=JobState.SUCCEEDED,
        submitted_at=10.0,
        finished_at=14.0,
    )
    assert await store.jobs.forget_interaction_tokens(issued_before=200.0) == 1
    assert await store.jobs.typical_durations() == {"m/one": 4.0}
    assert [j.id for j in await store.jobs.unposted()] == [job_id]
    assert await store.jobs.known_task_ids(["t1"]) == set()


async def test_a_past_cost_is_looked_for_among_the_latest_jobs_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an index of every priced job: the last few thousand jobs, by rowid."""
    monkeypatch.setattr(spend_module, "PAST_COST_JOBS", 3)
    old = await new_job(store, created_at=time.time())
    await store.jobs.update(old, status=JobState.SUCCEEDED, cost="0.10")
    assert await store.spend.median_cost("m/one", 512 * 512) == Decimal("0.1")
    for _ in range(3):  # newer jobs, none of them priced yet
        await new_job(store, created_at=time.time())
    assert await store.spend.median_cost("m/one", 512 * 512) is None
