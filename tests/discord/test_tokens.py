"""Interaction tokens are secrets that Discord expires after 15 minutes: the database keeps
them only while they work."""

from __future__ import annotations

from tests.discord.conftest import Harness


async def token(h: Harness, job_id: int, *, gone: bool = False) -> str | None:
    """The job's stored token; with `gone`, give the bot a few beats to drop it first."""
    for _ in range(5):
        job = await h.runtime.store.jobs.get(job_id)
        assert job is not None
        if job.interaction_token is None or not gone:
            return job.interaction_token
        await h.tick()
    return job.interaction_token


async def test_expired_tokens_are_dropped_when_results_are_delivered_and_at_start(
    harness: Harness,
) -> None:
    h = harness
    await h.alice.slash(h.channel, "imagine", prompt="a ship")
    first = await h.finish(await h.last_job())
    assert await token(h, first.id) is not None  # good for 15 minutes: kept

    await h.env.advance_time(16 * 60)
    await h.bob.slash(h.channel, "imagine", prompt="a storm")
    second = await h.finish(await h.last_job())
    assert await token(h, first.id, gone=True) is None
    assert await token(h, second.id) is not None

    await h.env.advance_time(16 * 60)
    await h.restart()
    assert await token(h, second.id, gone=True) is None
