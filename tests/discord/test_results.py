"""What gets posted: images within the upload limit, spoilers, failures in plain words,
nothing that pings, and results after the interaction token expired."""

from __future__ import annotations

import discord

from bot.jobs.gate import Backoff
from bot.jobs.job import JobState
from tests.discord.conftest import Harness


async def test_a_prompt_with_mentions_pings_nobody(harness: Harness) -> None:
    h = harness
    me = h.guild.me
    assert me is not None
    # Here the bot could ping everyone, so only its allowed mentions stop it.
    loud = h.guild.create_text_channel(
        "loud", overwrites={me: discord.PermissionOverwrite(mention_everyone=True)}
    )
    role = h.guild.create_role("Night owls", mentionable=True)
    prompt = f"@everyone @here {role.mention} {h.bob.mention} a crowd"
    result = await h.alice.slash(loud, "imagine", prompt=prompt)
    await h.finish(await h.last_job())
    refused = await h.alice.slash(loud, "imagine", prompt="x", scheduler=prompt)

    assert prompt in (h.message(result).embeds[0].description or "")
    assert "@everyone" in h.message(refused).content
    stored = list(h.env.backend.messages[loud.id].values())
    assert len(stored) == 2
    for message in stored:
        assert not message.mention_everyone
        assert message.ping_user_ids == []
        assert message.ping_role_ids == []
    sent = [_body(r.json) for r in h.env.http_requests if r.method in ("POST", "PATCH")]
    with_text = [body for body in sent if "content" in body or "embeds" in body]
    assert len(with_text) >= 3
    assert all(body.get("allowed_mentions") == {"parse": []} for body in with_text)


def _body(payload: object) -> dict[str, object]:
    """A request's message fields (interaction callbacks nest them under "data")."""
    if not isinstance(payload, dict):
        return {}
    data = payload.get("data")
    return data if isinstance(data, dict) else payload


async def test_an_nsfw_capable_model_runs_only_in_age_restricted_channels(
    harness: Harness,
) -> None:
    h = harness
    refused = await h.alice.slash(
        h.channel, "imagine", prompt="a hero", model="Hevok/Studio-Trigger"
    )
    assert refused.ephemeral
    assert "runs only in age-restricted channels" in h.message(refused).content
    assert await h.job_count() == 0

    result = await h.alice.slash(
        h.nsfw_channel, "imagine", prompt="a hero", model="Hevok/Studio-Trigger", samples=1
    )
    await h.finish(await h.last_job())
    attachments = h.message(result).attachments
    assert len(attachments) == 1
    assert not attachments[0].is_spoiler()


async def test_allowed_anywhere_nsfw_images_are_spoilered_outside_age_restricted_channels(
    harness: Harness,
) -> None:
    h = harness
    guild = await h.runtime.store.guilds.get(h.guild.id)
    await h.runtime.store.guilds.save(guild.with_changes(nsfw_anywhere=True))

    result = await h.alice.slash(
        h.channel, "imagine", prompt="a hero", model="Hevok/Studio-Trigger", samples=2
    )
    await h.finish(await h.last_job())

    attachments = h.message(result).attachments
    assert len(attachments) == 2
    assert all(a.is_spoiler() for a in attachments)


async def test_images_over_the_upload_limit_are_reencoded(harness: Harness) -> None:
    h = harness
    h.set_upload_limit(500)  # four 156-byte PNGs do not fit; four small WEBPs do
    result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse", samples=4)
    await h.finish(await h.last_job())

    attachments = h.message(result).attachments
    assert [a.filename.rsplit(".", 1)[1] for a in attachments] == ["webp"] * 4
    assert sum(a.size for a in attachments) <= 500
    assert h.rejected_uploads == 0  # the bot fitted them before sending


async def test_when_discord_refuses_the_upload_the_bot_tries_smaller(harness: Harness) -> None:
    h = harness
    h.set_upload_limit(500, advertise=False)  # Discord says 25 MiB, then refuses more than 500 B
    result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse", samples=4)
    await h.finish(await h.last_job())

    assert h.rejected_uploads == 1
    attachments = h.message(result).attachments
    assert [a.filename.rsplit(".", 1)[1] for a in attachments] == ["webp"] * 4


async def test_images_that_cannot_fit_are_posted_as_links(harness: Harness) -> None:
    h = harness
    h.set_upload_limit(40)
    result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse", samples=2)
    job = await h.finish(await h.last_job())

    message = h.message(result)
    assert message.attachments == []
    fields = {f.name: f.value for f in message.embeds[0].fields}
    links = fields["Images (too large to attach; links expire)"]
    assert all(o.url in links for o in job.outputs)


async def test_after_fifteen_minutes_the_result_is_a_channel_message(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a slow painting")
    job = await h.queued(await h.last_job())
    await h.env.advance_time(16 * 60)  # the interaction token has expired

    job = await h.finish(job)

    assert job.result_message_id is not None
    assert job.result_message_id != job.status_message_id
    posted = h.message_by_id(h.channel, job.result_message_id)
    assert posted.interaction_metadata is None  # a plain message, not an interaction answer
    assert len(posted.attachments) == 4
    assert posted.embeds[0].title == "Done"
    status = h.message(result)
    assert status.embeds[0].title == "Done"
    assert posted.jump_url in (status.embeds[0].description or "")
    assert status.components == []


async def test_a_failed_task_shows_wiros_reason(harness: Harness) -> None:
    h = harness
    h.wiro.next_outcome("failed")
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    job = await h.finish(await h.last_job())

    assert job.status is JobState.FAILED
    embed = h.message(result).embeds[0]
    assert embed.title == "Failed"
    assert "The model failed at Wiro. Wiro's reason: `RuntimeError: CUDA out of memory`" in (
        embed.description or ""
    )
    assert h.message(result).attachments == []


async def test_a_low_balance_keeps_the_job_waiting_and_says_why(harness: Harness) -> None:
    h = harness
    h.runtime.engine.gate.balance_backoff = Backoff(0.05, 0.1)
    h.wiro.fail_always("run", "code97")
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    job = await h.last_job()
    await h.until(job.id, lambda j: j.waiting_for is not None)
    assert h.runtime.engine.submissions_paused is not None
    # A probe Run in flight at a tick shows as sending. Ticks take no real time, so each is
    # given once the probe is back (the job waiting again); the next probe may still slip in
    # between, hence a few tries.
    for _ in range(20):
        await h.until(job.id, lambda j: j.status is JobState.WAITING and j.waiting_for is not None)
        await h.tick()
        title = h.message(result).embeds[0].title or ""
        if title.startswith("Waiting"):
            break
    assert title.startswith("Waiting: Wiro's balance for this project is too low")

    # Topped up: the next probe goes through and the job carries on by itself.
    h.wiro.stop_failing("run")
    done = await h.finish(job)
    assert done.status is JobState.SUCCEEDED
    assert h.runtime.engine.submissions_paused is None


async def test_a_job_past_its_deadline_says_it_timed_out(harness: Harness) -> None:
    h = harness
    h.runtime.engine.settings.deadline_seconds = 0.3
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    job = await h.last_job()
    await h.settle_final(job)

    embed = h.message(result).embeds[0]
    assert embed.title == "Timed out"
    assert "did not finish within" in (embed.description or "")
    assert isinstance(embed.colour, discord.Colour)


async def test_when_the_status_message_was_deleted_the_result_is_sent_anew(
    harness: Harness,
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship", samples=1)
    job = await h.queued(await h.last_job())
    await h.mod.delete(h.message(result))

    job = await h.finish(job)

    assert job.result_message_id is not None
    (posted,) = h.channel.history()
    assert posted.id == job.result_message_id
    assert len(posted.attachments) == 1
    assert posted.embeds[0].title == "Done"
