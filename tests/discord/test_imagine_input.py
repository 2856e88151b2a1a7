"""/imagine's options: autocompletion, and every way a request can be refused before Wiro."""

from __future__ import annotations

import time

import discord
import pytest

from tests.discord.conftest import Harness


async def test_model_autocomplete_offers_the_models_this_server_allows(harness: Harness) -> None:
    h = harness
    choices = await h.alice.autocomplete(h.channel, "imagine", "model", "")
    assert [c["value"] for c in choices] == [m.slug for m in h.runtime.catalog.all()]
    assert choices[1]["name"].startswith("Portrait+ — ")
    assert all(len(c["name"]) <= 100 for c in choices)

    guild = await h.runtime.store.guilds.get(h.guild.id)
    await h.runtime.store.guilds.save(
        guild.with_changes(disabled_models=frozenset({"hevok/studio-trigger"}))
    )
    choices = await h.alice.autocomplete(h.channel, "imagine", "model", "stu")
    assert choices == []
    choices = await h.alice.autocomplete(h.channel, "imagine", "model", "comic")
    assert [c["value"] for c in choices] == ["Adel_AI/Comics-Factory-v1"]


async def test_scheduler_autocomplete_follows_the_chosen_model(harness: Harness) -> None:
    h = harness
    choices = await h.alice.autocomplete(
        h.channel, "imagine", "scheduler", "ddim", model="wavymulder/portraitplus"
    )
    assert [c["value"] for c in choices] == ["DDIMScheduler"]

    # The configured default model (Portrait+) has schedulers too; Facechain has none.
    assert len(await h.alice.autocomplete(h.channel, "imagine", "scheduler", "")) == 7
    facechain = await h.alice.autocomplete(
        h.channel, "imagine", "scheduler", "", model="geelong_hillbilly/Facechain"
    )
    assert facechain == []


async def test_refiner_and_size_autocomplete(harness: Harness) -> None:
    h = harness
    refiner = await h.alice.autocomplete(
        h.channel, "imagine", "refiner", "", model="Hevok/Studio-Trigger"
    )
    assert [c["value"] for c in refiner] == ["--only_base_model", "YES"]
    widths = await h.alice.autocomplete(h.channel, "imagine", "width", "")
    assert [c["value"] for c in widths] == [512, 768, 576]
    assert widths[0]["name"] == "512 (Square 512×512)"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"model": "nobody/nothing"}, "Unknown model 'nobody/nothing'. Available: "),
        (
            {"model": "geelong_hillbilly/Facechain", "negative_prompt": "blur"},
            "Facechain does not take negative_prompt; it takes: prompt, samples,",
        ),
        ({"steps": 500}, "steps must be a whole number from 1 to 150 (got 500)."),
        ({"scheduler": "Fastest"}, "scheduler must be one of: EulerDiscreteScheduler,"),
        ({"width": 500}, "width must be a multiple of 8 from 256 to 2048 (got 500)."),
    ],
    ids=["unknown-model", "input-not-taken", "out-of-range", "unknown-choice", "not-multiple"],
)
async def test_invalid_input_is_refused_privately_without_a_job(
    harness: Harness, options: dict[str, object], words: str
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt="a cat", **options)

    assert result.ephemeral
    assert words in h.message(result).content
    assert await h.job_count() == 0
    assert h.wiro.runs == []


async def test_a_model_turned_off_on_this_server_is_refused(harness: Harness) -> None:
    h = harness
    guild = await h.runtime.store.guilds.get(h.guild.id)
    await h.runtime.store.guilds.save(
        guild.with_changes(disabled_models=frozenset({"adel_ai/comics-factory-v1"}))
    )
    result = await h.alice.slash(
        h.channel, "imagine", prompt="a cat", model="Adel_AI/Comics-Factory-v1"
    )
    assert result.ephemeral
    assert "Adel_AI/Comics-Factory-v1 is turned off on this server." in h.message(result).content
    assert await h.job_count() == 0


async def test_over_the_daily_limit_says_when_to_retry(harness: Harness) -> None:
    h = harness
    guild = await h.runtime.store.guilds.get(h.guild.id)
    await h.runtime.store.guilds.save(guild.with_changes(max_jobs_per_user_per_day=1))
    first = await h.alice.slash(h.channel, "imagine", prompt="one")
    assert not first.ephemeral
    started = (await h.last_job()).created_at

    second = await h.alice.slash(h.channel, "imagine", prompt="two")

    assert second.ephemeral
    text = h.message(second).content
    assert "You have used your 1 images per day on this server." in text
    retry_at = int(text.split("<t:")[1].split(":R>")[0])
    assert retry_at == pytest.approx(started + 86_400, abs=2)
    assert retry_at > time.time()
    assert await h.job_count() == 1


async def test_a_channel_where_the_bot_cannot_attach_files_is_refused_at_once(
    harness: Harness,
) -> None:
    h = harness
    me = h.guild.me
    assert me is not None
    locked = h.guild.create_text_channel(
        "no-files", overwrites={me: discord.PermissionOverwrite(attach_files=False)}
    )
    result = await h.alice.slash(locked, "imagine", prompt="a cat")

    assert result.ephemeral
    assert "I'm missing Attach Files here" in h.message(result).content
    assert await h.job_count() == 0
    assert h.wiro.runs == []
