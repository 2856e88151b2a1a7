"""Forms work for every member and across restarts; any error inside a command, a button or
a form ends in a private message in plain words and one log line, never in silence."""

from __future__ import annotations

import logging

import pytest

from bot.discord_views.errors import SORRY
from tests.discord.conftest import Harness


async def test_two_members_remixing_one_result_both_get_their_job(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship", seed=42)
    await h.finish(await h.last_job())

    bobs_form = await h.bob.click(h.message(result), label="Remix")
    mods_form = await h.mod.click(h.message(result), label="Remix")
    bobs = await h.bob.submit_modal(bobs_form, {"prompt": "a ship in a storm"})
    mods = await h.mod.submit_modal(mods_form, {"prompt": "a ship at dawn"})

    assert bobs.acknowledged and mods.acknowledged
    prompts = {h.message(r).embeds[0].description for r in (bobs, mods)}
    assert prompts == {"a ship in a storm", "a ship at dawn"}
    assert await h.job_count() == 3


async def test_a_remix_form_left_open_across_a_restart_can_be_submitted(
    harness: Harness,
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship", seed=42)
    await h.finish(await h.last_job())
    form = await h.bob.click(h.message(result), label="Remix")

    await h.restart()
    remix = await h.bob.submit_modal(form, {"prompt": "a ship, after the restart"})

    assert remix.acknowledged
    job = await h.last_job()
    assert job.prompt == "a ship, after the restart" and job.seed == 42
    assert h.message(remix).embeds[0].footer.text == f"Job {job.id}"


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bot.discord_views.errors"]


async def test_an_error_inside_a_command_is_told_privately_and_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    await h.runtime.store.close()  # the database goes away under the bot

    result = await h.alice.slash(h.channel, "history")

    assert result.acknowledged and result.ephemeral
    assert h.message(result).content == SORRY
    (record,) = failures(caplog)
    assert record.getMessage().startswith("/history failed for user ")
    assert record.exc_info is not None
    assert len(h.env.errors) == 1  # what simcord saw reach the command tree's handler


async def test_an_error_inside_a_button_is_told_privately_and_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    await h.finish(await h.last_job())
    await h.runtime.store.close()

    pressed = await h.bob.click(h.message(result), label="Reroll")

    assert pressed.acknowledged and pressed.ephemeral
    assert h.message(pressed).content == SORRY
    (record,) = failures(caplog)
    assert record.getMessage().startswith("the Reroll button failed for user ")


async def test_an_error_inside_a_form_is_told_privately_and_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a ship")
    await h.finish(await h.last_job())
    form = await h.bob.click(h.message(result), label="Remix")
    await h.runtime.store.close()

    remix = await h.bob.submit_modal(form, {"prompt": "a ship in a storm"})

    assert remix.acknowledged and remix.ephemeral
    assert h.message(remix).content == SORRY
    (record,) = failures(caplog)
    assert record.getMessage().startswith("the Remix form failed for user ")


async def test_an_error_behind_the_history_pages_is_told_privately(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.discord.test_history import make_job

    h = harness
    for index in range(12):
        await make_job(h, h.alice, f"cat {index}")
    result = await h.alice.slash(h.channel, "history")
    await h.runtime.store.close()

    pressed = await h.alice.click(h.message(result), label="Next")

    assert pressed.ephemeral and h.message(pressed).content == SORRY
    (record,) = failures(caplog)
    assert record.getMessage().startswith("the history page button failed for user ")
