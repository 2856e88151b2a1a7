"""Cancel on a status message; Reroll, Remix and Delete on a result."""

from __future__ import annotations

from bot.jobs.job import JobState
from bot.wiro.types import TaskStatus
from tests.discord.conftest import Harness


def labels(message: object) -> list[str]:
    return [c.label for row in message.components for c in row.children]  # type: ignore[attr-defined]


async def test_the_requester_cancels_a_queued_job(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    job = await h.queued(await h.last_job())

    answer = await h.alice.click(h.message(result), label="Cancel")

    assert answer.ephemeral
    assert h.message(answer).content == "Cancelled. Wiro had not started it yet."
    assert h.wiro.tasks[job.task_id].stopped_by == "cancel"
    await h.settle_final(job)
    status = h.message(result)
    assert status.embeds[0].title == "Cancelled"
    assert status.embeds[0].description == "This job was cancelled."
    assert labels(status) == []


async def test_someone_else_may_not_cancel_but_a_moderator_may(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    job = await h.queued(await h.last_job())

    refused = await h.bob.click(h.message(result), label="Cancel")
    assert refused.ephemeral
    assert "Only <@" in h.message(refused).content
    assert "can cancel it" in h.message(refused).content
    assert (await h.runtime.engine.get(job.id)).status is JobState.QUEUED  # type: ignore[union-attr]

    assert job.task_id is not None
    h.wiro.advance(job.task_id, TaskStatus.START)
    await h.until(job.id, lambda j: j.status is JobState.RUNNING)
    allowed = await h.mod.click(h.message(result), label="Cancel")
    assert h.message(allowed).content.startswith("Stopped. Wiro was already generating")
    assert h.wiro.tasks[job.task_id].stopped_by == "kill"


async def test_pressing_cancel_twice(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    await h.queued(await h.last_job())

    await h.alice.click(h.message(result), label="Cancel")
    again = await h.alice.click(h.message(result), label="Cancel")

    assert again.ephemeral
    assert h.message(again).content == "This job is already cancelled."


async def test_cancel_after_the_job_finished(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    job = await h.queued(await h.last_job())
    h.wiro.finish(job.task_id)  # type: ignore[arg-type]
    await h.until(job.id, lambda j: j.status.is_final)

    # The status message still shows Cancel until its next edit.
    late = await h.alice.click(h.message(result), label="Cancel")

    assert h.message(late).content == "Too late to cancel: its images are done."
    assert (await h.settle_final(job)).status is JobState.SUCCEEDED


async def test_reroll_runs_the_same_inputs_with_a_new_seed(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship", steps=12, guidance=5.5)
    first = await h.finish(await h.last_job())

    reroll = await h.bob.click(h.message(result), label="Reroll")

    assert not reroll.ephemeral
    second = await h.last_job()
    assert second.id != first.id
    assert second.user_id == h.bob.id
    assert second.prompt == "a ship"
    assert second.seed != first.seed
    assert {k: v for k, v in second.inputs.items() if k != "seed"} == {
        k: v for k, v in first.inputs.items() if k != "seed"
    }
    assert h.message(reroll).embeds[0].footer.text == f"Job {second.id}"
    assert labels(h.message(reroll)) == ["Cancel"]


async def test_remix_edits_the_prompt_and_keeps_the_seed(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship", seed=42)
    first = await h.finish(await h.last_job())

    shown = await h.bob.click(h.message(result), label="Remix")
    assert shown.modal is not None
    assert shown.modal["title"] == "Remix"
    (prompt_input,) = shown.modal["components"][0]["components"]
    assert prompt_input["value"] == "a ship"  # the old prompt, ready to edit

    remix = await h.bob.submit_modal(shown, {"prompt": "a ship in a storm"})

    second = await h.last_job()
    assert second.id != first.id
    assert second.prompt == "a ship in a storm"
    assert second.seed == 42
    assert h.message(remix).embeds[0].footer.text == f"Job {second.id}"


async def test_only_the_requester_or_a_moderator_may_delete(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    await h.finish(await h.last_job())
    posted = h.message(result)

    refused = await h.bob.click(posted, label="Delete")
    assert refused.ephemeral
    assert "can delete them" in h.message(refused).content
    assert any(m.id == posted.id for m in h.channel.history())

    deleted = await h.mod.click(posted, label="Delete")
    assert h.message(deleted).content == "Deleted."
    assert all(m.id != posted.id for m in h.channel.history())


async def test_the_requester_may_delete(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    await h.finish(await h.last_job())
    posted = h.message(result)

    await h.alice.click(posted, label="Delete")

    assert all(m.id != posted.id for m in h.channel.history())
