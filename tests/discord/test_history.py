"""/history: past jobs newest first, paged with buttons that survive a restart; one job in full."""

from __future__ import annotations

import re
import time

import discord
import simcord.actors
from simcord.actors import MemberActor
from simcord.builders import ChannelHandle

from bot.discord_views.history import (
    COUNT_CAP,
    MAX_SEARCH,
    HistoryPageButton,
    HistoryRequest,
    page_counts,
)
from bot.jobs.job import Job, JobState, Requester
from bot.jobs.retention import Retention
from bot.store import NewJob
from tests.discord.conftest import Harness

PORTRAIT = "wavymulder/portraitplus"
COMICS = "Adel_AI/Comics-Factory-v1"


async def make_job(
    h: Harness,
    who: MemberActor,
    prompt: str,
    *,
    channel: ChannelHandle | None = None,
    model: str = PORTRAIT,
    created_at: float | None = None,
    status: JobState = JobState.SUCCEEDED,
    guild_id: int | None = None,
) -> Job:
    """A past job, written to the store as the engine would have left it."""
    jobs = h.runtime.store.jobs
    job = await jobs.create(
        NewJob(
            model=model,
            prompt=prompt,
            inputs={"prompt": prompt, "steps": 30, "seed": 7},
            seed=7,
            requester=Requester(
                user_id=who.id,
                guild_id=h.guild.id if guild_id is None else guild_id,
                channel_id=(channel or h.channel).id,
            ),
            created_at=time.time() if created_at is None else created_at,
        )
    )
    await jobs.update(job.id, status=status)
    return job


def entries(message: discord.Message) -> list[str]:
    """The job numbers a history page lists, in order."""
    return re.findall(r"\*\*Job (\d+)\*\*", message.embeds[0].description or "")


def footer(message: discord.Message) -> str:
    return message.embeds[0].footer.text or ""


def buttons(message: discord.Message) -> dict[str, bool]:
    """label -> disabled"""
    return {c.label: c.disabled for row in message.components for c in row.children}  # type: ignore[attr-defined]


async def test_history_shows_when_who_model_prompt_state_and_a_link(harness: Harness) -> None:
    h = harness
    posted = await h.alice.slash(h.channel, "imagine", prompt="a *lighthouse* at dusk")
    done = await h.finish(await h.last_job())
    failed = await make_job(h, h.alice, "a storm", model=COMICS, status=JobState.FAILED)
    await make_job(h, h.bob, "not mine")

    result = await h.alice.slash(h.channel, "history")

    assert result.ephemeral
    message = h.message(result)
    embed = message.embeds[0]
    assert embed.title == "Your images on this server"
    assert entries(message) == [str(failed.id), str(done.id)]
    first, second = (embed.description or "").split("\n\n")
    assert first == (
        f"**Job {failed.id}** · <t:{int(failed.created_at)}:R> · <@{h.alice.id}> · "
        "Comics Factory v1 · Failed\n> a storm"
    )
    url = f"https://discord.com/channels/{h.guild.id}/{h.channel.id}/{h.message(posted).id}"
    assert second == (
        f"**Job {done.id}** · <t:{int(done.created_at)}:R> · <@{h.alice.id}> · Portrait+ · "
        f"Done · $0.01 · [result]({url})\n> a \\*lighthouse\\* at dusk"
    )
    assert footer(message) == "Page 1 of 1 · 2 jobs · /history job:<number> shows one"
    assert message.components == []


async def test_history_pages_with_previous_and_next(harness: Harness) -> None:
    h = harness
    start = time.time() - 1000
    made = [await make_job(h, h.alice, f"cat {i}", created_at=start + i) for i in range(23)]
    newest_first = [str(j.id) for j in reversed(made)]

    result = await h.alice.slash(h.channel, "history")
    page = h.message(result)
    assert entries(page) == newest_first[:10]
    assert footer(page).startswith("Page 1 of 3 · 23 jobs")
    assert buttons(page) == {"Previous": True, "Next": False}

    await h.alice.click(page, label="Next")
    page = h.message(result)
    assert entries(page) == newest_first[10:20]
    assert footer(page).startswith("Page 2 of 3")
    assert buttons(page) == {"Previous": False, "Next": False}

    await h.alice.click(page, label="Next")
    page = h.message(result)
    assert entries(page) == newest_first[20:]
    assert buttons(page) == {"Previous": False, "Next": True}

    await h.alice.click(page, label="Previous")
    assert entries(h.message(result)) == newest_first[10:20]


async def test_paging_works_after_a_restart_and_new_jobs_do_not_shift_pages(
    harness: Harness,
) -> None:
    h = harness
    made = [await make_job(h, h.alice, f"cat {i}", created_at=1000.0 + i) for i in range(12)]
    result = await h.alice.slash(h.channel, "history", search="cat")

    await h.restart()
    newer = await make_job(h, h.alice, "cat 12")
    await h.alice.click(h.message(result), label="Next")

    page = h.message(result)
    assert footer(page).startswith("Page 2 of 2 · 13 jobs")
    # The page goes on after the last job shown: nothing twice, the new job on page 1.
    assert entries(page) == [str(made[1].id), str(made[0].id)]
    assert (page.embeds[0].description or "").startswith("Prompt contains: “cat”")

    await h.alice.click(page, label="Previous")
    page = h.message(result)
    assert entries(page)[0] == str(newer.id)
    assert footer(page).startswith("Page 1 of 2")


async def test_only_the_person_who_asked_may_page(harness: Harness) -> None:
    h = harness
    for i in range(11):
        await make_job(h, h.alice, f"cat {i}")
    result = await h.alice.slash(h.channel, "history")
    page = h.message(result)
    (next_id,) = [
        c.custom_id
        for row in page.components
        for c in row.children
        if c.label == "Next"  # type: ignore[attr-defined]
    ]

    # Bob cannot see Alice's private message; a forged click with its custom_id stands in
    # for "someone else presses the button".
    stored = h.env.backend.get_message(h.channel.id, page.id)
    forged = await simcord.actors._component_interaction(
        h.bob, stored, {"custom_id": next_id, "component_type": 2}
    )

    assert forged.ephemeral
    assert h.message(forged).content == (
        "Only the person who asked can page through this list; use /history yourself."
    )
    assert footer(h.message(result)).startswith("Page 1 of 2")


async def test_server_scope_shows_everyone_in_channels_you_can_see(harness: Harness) -> None:
    h = harness
    secret = h.guild.create_text_channel(
        "secret",
        overwrites={
            h.guild.default_role: discord.PermissionOverwrite(view_channel=False),
            h.bob: discord.PermissionOverwrite(view_channel=True),
        },
    )
    mine = await make_job(h, h.alice, "alice's cat", created_at=1000.0)
    bobs = await make_job(h, h.bob, "bob's dog", created_at=1001.0)
    hidden = await make_job(h, h.bob, "bob's secret", channel=secret, created_at=1002.0)
    await make_job(h, h.bob, "elsewhere", guild_id=h.guild.id + 1, created_at=1003.0)

    alice = h.message(await h.alice.slash(h.channel, "history", scope="server"))
    assert alice.embeds[0].title == "Images on this server"
    assert entries(alice) == [str(bobs.id), str(mine.id)]
    assert f"<@{h.bob.id}>" in (alice.embeds[0].description or "")

    bob = h.message(await h.bob.slash(h.channel, "history", scope="server"))
    assert entries(bob) == [str(hidden.id), str(bobs.id), str(mine.id)]

    only_mine = h.message(await h.bob.slash(h.channel, "history"))
    assert entries(only_mine) == [str(hidden.id), str(bobs.id)]


async def test_filters_by_model_and_prompt(harness: Harness) -> None:
    h = harness
    cat = await make_job(h, h.alice, "a grey CAT", created_at=1000.0)
    comic_cat = await make_job(h, h.alice, "a comic cat", model=COMICS, created_at=1001.0)
    await make_job(h, h.alice, "a dog", model=COMICS, created_at=1002.0)
    await make_job(h, h.alice, "100% cat_ish", created_at=1003.0)

    by_model = h.message(
        await h.alice.slash(h.channel, "history", model="adel_ai/comics-factory-v1")
    )
    assert len(entries(by_model)) == 2
    assert (by_model.embeds[0].description or "").startswith("Model: Comics Factory v1\n")

    both = h.message(await h.alice.slash(h.channel, "history", model=COMICS, search="cat"))
    assert entries(both) == [str(comic_cat.id)]
    # Search is plain text: % and _ match only themselves.
    assert len(entries(h.message(await h.alice.slash(h.channel, "history", search="% cat_")))) == 1
    assert entries(h.message(await h.alice.slash(h.channel, "history", search="grey cat"))) == [
        str(cat.id)
    ]

    nothing = h.message(await h.alice.slash(h.channel, "history", search="zebra"))
    assert "No jobs match." in (nothing.embeds[0].description or "")
    assert footer(nothing).startswith("Page 1 of 1 · 0 jobs")

    unknown = await h.alice.slash(h.channel, "history", model="nobody/nothing")
    assert unknown.ephemeral
    assert h.message(unknown).content.startswith("Unknown model 'nobody/nothing'. Available: ")

    offered = await h.alice.autocomplete(h.channel, "history", "model", "comic")
    assert [c["value"] for c in offered] == [COMICS]


async def test_one_job_shows_every_input_and_its_images(harness: Harness) -> None:
    h = harness
    posted = await h.alice.slash(
        h.channel, "imagine", prompt="a lighthouse", steps=12, negative_prompt="fog"
    )
    job = await h.finish(await h.last_job())
    assert len(job.outputs) == 4

    result = await h.bob.slash(h.channel, "history", job=job.id)

    assert result.ephemeral
    message = h.message(result)
    embed = message.embeds[0]
    assert embed.title == f"Job {job.id} · Done"
    lines = (embed.description or "").splitlines()
    assert lines[0] == "> a lighthouse"
    assert "`steps` 12" in lines
    assert "`negative_prompt` fog" in lines
    assert "`scheduler` EulerDiscreteScheduler" in lines
    assert f"`seed` {job.seed}" in lines
    assert {f"`{option}`" for option in job.inputs if option != "prompt"} == {
        line.split(" ", 1)[0] for line in lines[3:]
    }
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Model"] == "Portrait+ (`wavymulder/portraitplus`)"
    assert fields["Requested by"] == f"<@{h.alice.id}>"
    assert fields["Seed"] == str(job.seed)
    assert fields["Cost"].startswith("$")
    url = f"https://discord.com/channels/{h.guild.id}/{h.channel.id}/{h.message(posted).id}"
    assert fields["Posted"] == f"[Go to the message]({url})"
    assert len(message.attachments) == 4
    assert not any(a.filename.startswith("SPOILER_") for a in message.attachments)


async def test_one_job_that_failed_says_why(harness: Harness) -> None:
    h = harness
    job = await make_job(h, h.alice, "a storm", status=JobState.FAILED)
    await h.runtime.store.jobs.update(job.id, error="Out of memory")

    message = h.message(await h.alice.slash(h.channel, "history", job=job.id))

    embed = message.embeds[0]
    assert embed.title == f"Job {job.id} · Failed"
    assert {f.name: f.value for f in embed.fields}["Why"] == "Out of memory"
    assert message.attachments == []


async def test_one_job_only_of_this_server_and_in_sight(harness: Harness) -> None:
    h = harness
    secret = h.guild.create_text_channel(
        "secret",
        overwrites={
            h.guild.default_role: discord.PermissionOverwrite(view_channel=False),
            h.bob: discord.PermissionOverwrite(view_channel=True),
        },
    )
    hidden = await make_job(h, h.bob, "bob's secret", channel=secret)
    elsewhere = await make_job(h, h.alice, "other server", guild_id=h.guild.id + 1)

    for job_id in (hidden.id, elsewhere.id, 9999):
        result = await h.alice.slash(h.channel, "history", job=job_id)
        assert result.ephemeral
        assert h.message(result).content == (
            f"There is no job {job_id} on this server that you can see."
        )
    own = h.message(await h.bob.slash(h.channel, "history", job=hidden.id))
    assert own.embeds[0].title == f"Job {hidden.id} · Done"


async def test_a_job_whose_images_expired_says_so_instead_of_a_broken_image(
    harness: Harness,
) -> None:
    h = harness
    await h.alice.slash(h.channel, "imagine", prompt="a lighthouse")
    job = await h.finish(await h.last_job())
    two_days_later = time.time() + 2 * 86400
    retention = Retention(
        h.runtime.store,
        h.runtime.settings.database.outputs_path,
        keep_days=1,
        clock=lambda: two_days_later,
    )
    assert (await retention.prune()).files == len(job.outputs) == 4

    listed = h.message(await h.alice.slash(h.channel, "history"))
    assert " · Done · images expired · $0.01 · [result](" in (listed.embeds[0].description or "")

    shown = h.message(await h.alice.slash(h.channel, "history", job=job.id))
    assert shown.embeds[0].title == f"Job {job.id} · Done"
    assert shown.attachments == []
    fields = {f.name: f.value for f in shown.embeds[0].fields}
    assert fields["Images"] == (
        f"Images expired <t:{int(two_days_later)}:R> (the bot keeps images for a limited"
        " time); the posted message may still show them."
    )
    assert not any("Image 1" in (value or "") for value in fields.values())  # no dead links


def test_the_longest_page_button_fits_discords_custom_id() -> None:
    longest = HistoryRequest(
        user_id=2**64 - 1,
        server=True,
        model="someone/a-very-long-model-name-indeed",
        search="x" * MAX_SEARCH,
        page=9999,
        cursor=10**9,  # a billion jobs
        newer=True,
    )
    assert len(longest.custom_id()) <= 100
    match = re.fullmatch(HistoryPageButton.__discord_ui_compiled_template__, longest.custom_id())
    assert match is not None
    assert (match["user"], match["cursor"], match["page"]) == ("3w5e11264sgsf", "gjdgxs", "9999")


def test_a_large_history_is_not_counted_to_the_end() -> None:
    assert page_counts(0, 23) == "Page 1 of 3 · 23 jobs"
    assert page_counts(41, COUNT_CAP) == f"Page 42 · {COUNT_CAP}+ jobs"
    assert page_counts(3, 200, cap=200) == "Page 4 · 200+ jobs"
