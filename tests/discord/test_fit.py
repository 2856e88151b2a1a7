"""Whatever a member types comes back in a message Discord accepts: free-text options have
lengths Discord enforces, and everything the bot echoes is shortened to fit its place."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from simcord.actors import MemberActor

from bot.discord_views.fit import fit, fit_embed
from tests.discord.conftest import Harness

SHORT = "ẍ" * 100  # the longest a model, input or choice can be typed
PROMPT = "a lighthouse " * 153 + "x"  # 1,990 characters


@pytest.fixture
def admin(harness: Harness) -> MemberActor:
    h = harness
    role = h.guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True))
    return h.guild.add_member(h.env.create_user("ada"), roles=[role])


def options_of(h: Harness, name: str) -> dict[str, dict[str, Any]]:
    command = h.env.backend.find_command(name.split()[0], None)
    assert command is not None
    options = command["options"]
    for part in name.split()[1:]:
        options = next(o for o in options if o["name"] == part)["options"]
    return {o["name"]: o for o in options}


def assert_fits(message: discord.Message) -> None:
    assert len(message.content or "") <= 2000
    for embed in message.embeds:
        assert len(embed) <= 6000
        assert len(embed.title or "") <= 256 and len(embed.description or "") <= 4096
        assert all(len(f.name or "") <= 256 and len(f.value or "") <= 1024 for f in embed.fields)


async def test_free_text_options_have_lengths_discord_enforces(harness: Harness) -> None:
    h = harness
    imagine = options_of(h, "imagine")
    assert imagine["prompt"]["max_length"] == 2000
    assert imagine["negative_prompt"]["max_length"] == 2000
    for name in ("model", "scheduler", "refiner"):
        assert imagine[name]["max_length"] == 100, name
    assert options_of(h, "models")["model"]["max_length"] == 100
    assert options_of(h, "history")["model"]["max_length"] == 100
    default = options_of(h, "settings default")
    assert default["model"]["max_length"] == 100 and default["input"]["max_length"] == 100
    assert default["value"]["max_length"] == 2000


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("imagine", {"prompt": PROMPT, "model": SHORT}),
        ("imagine", {"prompt": PROMPT, "scheduler": SHORT}),
        ("imagine", {"prompt": PROMPT, "negative_prompt": PROMPT, "steps": 9000}),
        ("imagine", {"prompt": PROMPT, "model": "Hevok/Studio-Trigger", "refiner": SHORT}),
        ("models", {"model": SHORT}),
        ("history", {"model": SHORT}),
    ],
)
async def test_the_longest_values_members_can_type_come_back_in_a_refusal_that_fits(
    harness: Harness, command: str, options: dict[str, object]
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, command, **options)
    assert result.acknowledged and result.ephemeral
    message = h.message(result)
    assert_fits(message)
    assert "must" in message.content or "Unknown" in message.content
    assert h.wiro.calls["run"] == 0


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("settings model", {"model": SHORT}),
        ("settings default", {"model": SHORT, "input": SHORT, "value": PROMPT}),
        ("settings default", {"model": "wavymulder/portraitplus", "input": SHORT, "value": "1"}),
        (
            "settings default",
            {"model": "wavymulder/portraitplus", "input": "scheduler", "value": PROMPT},
        ),
        ("settings clear", {"model": SHORT}),
        ("settings enable", {"model": SHORT}),
        ("settings disable", {"model": SHORT}),
    ],
)
async def test_admins_pasting_long_text_get_an_answer_that_fits(
    harness: Harness, admin: MemberActor, command: str, options: dict[str, object]
) -> None:
    h = harness
    result = await admin.slash(h.channel, command, **options)
    assert result.acknowledged and result.ephemeral
    assert_fits(h.message(result))


async def test_a_long_prompt_shows_whole_enough_in_the_status_and_result(
    harness: Harness,
) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "imagine", prompt=PROMPT, negative_prompt=PROMPT)
    assert_fits(h.message(result))
    job = await h.finish(await h.last_job())
    posted = h.message(result)
    assert posted.embeds[0].title == "Done"
    assert_fits(posted)
    history = await h.alice.slash(h.channel, "history", job=job.id)
    assert_fits(h.message(history))


def test_an_embed_over_discords_limits_is_shortened_part_by_part() -> None:
    embed = discord.Embed(title="t" * 300, description="d" * 5000)
    for index in range(10):
        embed.add_field(name=f"n{index}" * 200, value="v" * 2000)
    embed.set_footer(text="f" * 3000)
    fitted = fit_embed(embed)
    assert len(fitted.title or "") == 256 and (fitted.title or "").endswith("…")
    assert all(len(f.value or "") <= 1024 and len(f.name or "") <= 256 for f in fitted.fields)
    assert len(fitted) <= 6000
    assert fit("short", 10) == "short" and fit("x" * 11, 10) == "x" * 9 + "…"
