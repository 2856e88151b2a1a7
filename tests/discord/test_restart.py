"""Stopping the bot while jobs run, then starting it again on the same database."""

from __future__ import annotations

from bot.jobs.job import JobState
from tests.discord.conftest import Harness


def labels(message: object) -> list[str]:
    return [c.label for row in message.components for c in row.children]  # type: ignore[attr-defined]


async def test_a_job_running_across_a_restart_is_posted_once(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse", samples=2)
    job = await h.queued(await h.last_job())

    await h.restart()
    job = await h.finish(job)

    assert job.status is JobState.SUCCEEDED
    assert job.result_message_id == job.status_message_id
    posted = h.message(result)
    assert posted.embeds[0].title == "Done"
    assert len(posted.attachments) == 2
    assert len(h.channel.history()) == 1
    assert len(h.wiro.runs) == 1

    await h.restart()  # nothing left to post
    await h.tick(3)
    assert len(h.channel.history()) == 1
    assert len(h.message(result).attachments) == 2


async def test_a_job_that_ended_while_the_bot_was_down_is_posted_at_start(
    harness: Harness,
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse", samples=1)
    job = await h.queued(await h.last_job())
    assert job.task_id is not None
    h.wiro.finish(job.task_id)
    await h.until(job.id, lambda j: j.status.is_final)  # stored, not yet posted

    await h.restart()
    job = await h.settle_final(job)

    assert job.posted_at is not None
    assert h.message(result).embeds[0].title == "Done"
    assert len(h.message(result).attachments) == 1
    assert len(h.channel.history()) == 1


async def test_old_buttons_work_after_a_restart(harness: Harness) -> None:
    h = harness
    first = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    await h.finish(await h.last_job())
    second = await h.alice.slash(h.channel, "imagine", prompt="a storm")
    storm = await h.queued(await h.last_job())

    await h.restart()

    refused = await h.bob.click(h.message(second), label="Cancel")
    assert "can cancel it" in h.message(refused).content
    cancelled = await h.alice.click(h.message(second), label="Cancel")
    assert h.message(cancelled).content == "Cancelled. Wiro had not started it yet."
    storm = await h.settle_final(storm)
    assert storm.status is JobState.CANCELLED
    assert h.message(second).embeds[0].title == "Cancelled"

    reroll = await h.bob.click(h.message(first), label="Reroll")
    assert labels(h.message(reroll)) == ["Cancel"]
    assert (await h.last_job()).prompt == "a ship"
