"""/imagine as people see it: a status message, then the images with their details."""

from __future__ import annotations

from bot.jobs.job import JobState
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
    assert fields["Cost"].startswith("$")
    labels = [c.label for row in posted.components for c in row.children]
    assert labels == ["Reroll", "Remix", "Delete"]
