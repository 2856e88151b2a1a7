"""/imagine as people see it: a status message, then the images with their details."""

from __future__ import annotations

from bot.discord_views.updater import BEAT
from bot.jobs.job import JobState
from bot.wiro.types import TaskStatus
from tests.discord.conftest import Harness


async def test_imagine_shows_status_then_posts_the_images(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse at dusk", samples=2)

    assert result.acknowledged and not result.ephemeral
    status = h.message(result)
    assert status.embeds[0].title.startswith("Waiting for a free slot")
    assert "a lighthouse at dusk" in (status.embeds[0].description or "")
    assert [c.label for row in status.components for c in row.children] == ["Cancel"]

    job = await h.queued(await h.last_job())
    assert h.message(result).embeds[0].title == "Queued at Wiro"
    fields = {field.name: field.value for field in h.message(result).embeds[0].fields}
    assert fields["Price"] == "about $0.0060"  # dynamicprice: cpo $0.003, two images

    job = await h.finish(job)
    assert job.status is JobState.SUCCEEDED
    posted = h.message(result)
    assert len(posted.attachments) == 2
    embed = posted.embeds[0]
    assert embed.title == "Done"
    fields = {field.name: field.value for field in embed.fields}
    assert fields["Seed"] == str(job.seed)
    assert "portraitplus" in fields["Model"]
    assert "steps 30" in fields["Inputs"]
    assert fields["Cost"] == "$0.0060"  # the stand-in's price: two images, under a cent
    assert fields["Time"].endswith(" s")
    assert fields["Size"] == "512×512"
    labels = [c.label for row in posted.components for c in row.children]
    assert labels == ["Reroll", "Remix", "Delete"]


async def test_jobs_waiting_for_a_slot_show_their_place_in_line(harness: Harness) -> None:
    h = harness
    h.runtime.engine.settings.max_concurrent = 1
    first = await h.alice.slash(h.channel, "imagine", prompt="one")
    running = await h.queued(await h.last_job())
    second = await h.bob.slash(h.channel, "imagine", prompt="two")
    third = await h.mod.slash(h.channel, "imagine", prompt="three")
    waiting = await h.last_job()

    assert h.message(first).embeds[0].title == "Queued at Wiro"
    assert h.message(second).embeds[0].title == "Waiting for a free slot (position 1)"
    assert h.message(third).embeds[0].title == "Waiting for a free slot (position 2)"

    dropped = await h.bob.click(h.message(second), label="Cancel")
    assert h.message(dropped).content.startswith("Cancelled. It had not reached Wiro yet")
    await h.tick()
    assert h.message(second).embeds[0].title == "Cancelled"
    assert h.message(third).embeds[0].title == "Waiting for a free slot (position 1)"

    await h.finish(running)
    await h.queued(waiting)
    assert h.message(third).embeds[0].title == "Queued at Wiro"
    assert len(h.wiro.runs) == 2


async def test_the_status_shows_generation_progress_when_wiro_reports_it(
    harness: Harness,
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a windmill")
    job = await h.queued(await h.last_job())
    assert job.task_id is not None
    h.wiro.advance(job.task_id, TaskStatus.OUTPUT)
    h.wiro.report_progress(job.task_id, 60, 18, 30)
    await h.until(job.id, lambda j: j.progress is not None and j.progress.fraction == 0.6)
    await h.tick()
    embed = h.message(result).embeds[0]
    assert embed.title == "Generating… 60%"
    fields = {field.name: field.value for field in embed.fields}
    assert fields["Progress"] == "▰▰▰▰▰▰▱▱▱▱ 60% · step 18/30"

    h.wiro.report_progress(job.task_id, 90, 27, 30)
    await h.until(job.id, lambda j: j.progress is not None and j.progress.step == 27)
    await h.tick()
    fields = {field.name: field.value for field in h.message(result).embeds[0].fields}
    assert fields["Progress"] == "▰▰▰▰▰▰▰▰▰▱ 90% · step 27/30"


async def test_a_result_is_posted_within_a_beat_of_the_end(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a quick sketch")
    job = await h.queued(await h.last_job())
    await h.tick()  # the message was last edited a full interval ago
    assert job.task_id is not None
    h.wiro.finish(job.task_id)
    await h.until(job.id, lambda j: j.status.is_final)

    await h.env.advance_time(BEAT)
    assert h.message(result).embeds[0].title == "Done"


async def test_far_back_in_a_long_line_the_place_is_shown_again_when_it_moved_by_a_tenth(
    harness: Harness,
) -> None:
    h = harness
    h.runtime.engine.settings.max_concurrent = 1
    results = [await h.alice.slash(h.channel, "imagine", prompt=f"p{n}") for n in range(15)]
    first = await h.runtime.store.jobs.get(1)
    assert first is not None
    running = await h.queued(first)
    assert h.message(results[1]).embeds[0].title == "Waiting for a free slot (position 1)"
    assert h.message(results[14]).embeds[0].title == "Waiting for a free slot (position 14)"

    await h.finish(running)
    await h.tick(2)
    # Near the front every move is shown; far back, not a move of one place in fourteen.
    assert h.message(results[11]).embeds[0].title == "Waiting for a free slot (position 10)"
    assert h.message(results[14]).embeds[0].title == "Waiting for a free slot (position 14)"

    second = await h.runtime.store.jobs.get(2)
    assert second is not None
    await h.finish(second)
    await h.tick(2)
    assert h.message(results[14]).embeds[0].title == "Waiting for a free slot (position 12)"
