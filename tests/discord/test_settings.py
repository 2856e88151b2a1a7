"""/settings: server admins choose the default model, input defaults, models, limits and the
NSFW policy; each applies to the next job."""

from __future__ import annotations

import time
from decimal import Decimal

import discord
import pytest
from simcord.actors import MemberActor
from simcord.backend.errors import SetupError

from bot.jobs.job import JobState, Requester
from bot.store import NewJob
from tests.discord.conftest import Harness

PORTRAIT = "wavymulder/portraitplus"
COMICS = "Adel_AI/Comics-Factory-v1"
STUDIO = "Hevok/Studio-Trigger"


@pytest.fixture
def admin(harness: Harness) -> MemberActor:
    """A member with Manage Server (not Administrator)."""
    h = harness
    role = h.guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True))
    return h.guild.add_member(h.env.create_user("ada"), roles=[role])


async def say(h: Harness, who: MemberActor, command: str, **options: object) -> str:
    """Run a /settings subcommand; its private answer's text."""
    result = await who.slash(h.channel, f"settings {command}", **options)
    assert result.ephemeral
    return h.message(result).content


# -- who may ----------------------------------------------------------------------------------


async def test_settings_is_registered_for_manage_server_and_guilds_only(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    command = h.env.backend.find_command("settings", None)
    assert command is not None
    assert int(command["default_member_permissions"]) == discord.Permissions.manage_guild.flag
    assert command["contexts"] == [0]
    assert "settings show" in admin.available_commands(h.channel)
    assert not any(c.startswith("settings") for c in h.mod.available_commands(h.channel))
    with pytest.raises(SetupError, match="default-member-permissions"):
        await h.alice.slash(h.channel, "settings show")


async def test_a_member_granted_the_command_without_manage_server_is_refused(
    harness: Harness,
) -> None:
    h = harness
    # The server lets bob use the command in its integration settings; the bot still says no.
    command = h.env.backend.find_command("settings", None)
    assert command is not None
    h.guild.set_command_permissions(int(command["id"]), {h.bob: True})

    for subcommand, options in (
        ("show", {}),
        ("model", {"model": COMICS}),
        ("nsfw", {"allow_everywhere": True}),
        ("disable", {"model": COMICS}),
    ):
        text = await say(h, h.bob, subcommand, **options)
        assert (
            text
            == "Only members with **Manage Server** can change the bot's settings on this server."
        )
    guild = await h.runtime.store.guilds.get(h.guild.id)
    assert guild.default_model is None
    assert guild.nsfw_anywhere is False
    assert guild.disabled_models == frozenset()


# -- show -------------------------------------------------------------------------------------


async def test_show_on_a_fresh_server(harness: Harness, admin: MemberActor) -> None:
    h = harness
    result = await admin.slash(h.channel, "settings show")

    assert result.ephemeral
    fields = {f.name: f.value for f in h.message(result).embeds[0].fields}
    assert fields == {
        "Default model": "Portrait+ (`wavymulder/portraitplus`) (the bot's default)",
        "Models turned off": "None: every model is on",
        "Limits": "Images per job: the model's maximum\n"
        "Steps per job: the model's maximum\n"
        "Jobs at once per member: 2 (the bot's limit)\n"
        "Jobs per member per day: no limit",
        "NSFW-capable models": "Run only in age-restricted channels",
        "Server defaults": "None: the models' own defaults apply",
        "Spend": "0 jobs, $0.00 in all\n0 jobs, $0.00 in the last 30 days",
    }


async def test_show_everything_the_server_has_set_and_its_spend(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    await say(h, admin, "model", model=COMICS)
    await say(h, admin, "disable", model=STUDIO)
    await say(h, admin, "limits", max_samples=2, jobs_per_day=10)
    await say(h, admin, "nsfw", allow_everywhere=True)
    await say(h, admin, "default", model=PORTRAIT, input="steps", value="20")
    await say(h, admin, "default", model=PORTRAIT, input="scheduler", value="ddimscheduler")
    jobs = h.runtime.store.jobs
    for cost, created_at in ((Decimal("0.012"), 1_000.0), (Decimal("0.003"), time.time())):
        job = await jobs.create(
            NewJob(
                model=PORTRAIT,
                prompt="a cat",
                inputs={"prompt": "a cat", "seed": 1},
                seed=1,
                requester=Requester(user_id=h.alice.id, guild_id=h.guild.id),
                created_at=created_at,
            )
        )
        await jobs.update(job.id, status=JobState.SUCCEEDED, cost=cost)

    result = await admin.slash(h.channel, "settings show")

    fields = {f.name: f.value for f in h.message(result).embeds[0].fields}
    assert fields["Default model"] == "Comics Factory v1 (`Adel_AI/Comics-Factory-v1`)"
    assert fields["Models turned off"] == "Studio Trigger (`Hevok/Studio-Trigger`)"
    assert fields["Limits"] == (
        "Images per job: at most 2\n"
        "Steps per job: the model's maximum\n"
        "Jobs at once per member: 2 (the bot's limit)\n"
        "Jobs per member per day: 10"
    )
    assert fields["NSFW-capable models"].startswith("Run in every channel")
    assert fields["Server defaults"] == (
        "Portrait+ (`wavymulder/portraitplus`): scheduler DDIMScheduler · steps 20"
    )
    assert fields["Spend"] == "2 jobs, $0.02 in all\n1 job, $0.0030 in the last 30 days"


# -- the default model ------------------------------------------------------------------------


async def test_the_servers_default_model_runs_the_next_job(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    choices = await admin.autocomplete(h.channel, "settings model", "model", "comic")
    assert [c["value"] for c in choices] == [COMICS]

    text = await say(h, admin, "model", model="adel_ai/comics-factory-v1")

    assert text == (
        "New images on this server use Comics Factory v1 (`Adel_AI/Comics-Factory-v1`) "
        "unless someone picks a model."
    )
    assert (await h.runtime.store.guilds.get(h.guild.id)).default_model == COMICS
    await h.alice.slash(h.channel, "imagine", prompt="a cat")
    job = await h.until((await h.last_job()).id, lambda j: j.task_id is not None)
    assert job.model == COMICS
    assert h.wiro.runs[-1].slug.lower() == COMICS.lower()

    text = await say(h, admin, "model")
    assert text == (
        "This server uses the bot's default model again: Portrait+ (`wavymulder/portraitplus`)."
    )
    assert (await h.runtime.store.guilds.get(h.guild.id)).default_model is None


async def test_the_default_model_must_exist_and_be_on(harness: Harness, admin: MemberActor) -> None:
    h = harness
    text = await say(h, admin, "model", model="nobody/nothing")
    assert text.startswith("Unknown model 'nobody/nothing'. Available: ")

    await say(h, admin, "disable", model=COMICS)
    text = await say(h, admin, "model", model=COMICS)
    assert text.startswith(
        "Comics Factory v1 (`Adel_AI/Comics-Factory-v1`) is turned off on this server. "
        "Turn it on first with `/settings enable`, or choose one of: "
    )
    assert (await h.runtime.store.guilds.get(h.guild.id)).default_model is None


# -- per-model defaults -----------------------------------------------------------------------


async def test_a_server_default_reaches_wiro_with_the_next_job(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    text = await say(h, admin, "default", model=PORTRAIT, input="steps", value="12")
    assert text == (
        "Portrait+ (`wavymulder/portraitplus`) now uses `steps` **12** on this server "
        "unless someone gives another value."
    )
    await say(h, admin, "default", model=PORTRAIT, input="guidance", value="5.5")
    await say(h, admin, "default", model=PORTRAIT, input="negative_prompt", value=" blurry ")

    await h.alice.slash(h.channel, "imagine", prompt="a cat")
    await h.until((await h.last_job()).id, lambda j: j.task_id is not None)
    body = h.wiro.runs[-1].body
    assert int(body["steps"]) == 12
    assert float(body["scale"]) == 5.5
    assert body["negativePrompt"] == "blurry"

    # An option given in /imagine still wins.
    await h.alice.slash(h.channel, "imagine", prompt="a dog", steps=40)
    await h.until((await h.last_job()).id, lambda j: j.task_id is not None)
    assert int(h.wiro.runs[-1].body["steps"]) == 40


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (
            {"model": PORTRAIT, "input": "steps", "value": "500"},
            "steps must be a whole number from 1 to 150 (got 500).",
        ),
        (
            {"model": PORTRAIT, "input": "guidance", "value": "lots"},
            "guidance must be a number from 0 to 30 (got 'lots').",
        ),
        (
            {"model": PORTRAIT, "input": "scheduler", "value": "Fastest"},
            "scheduler must be one of: EulerDiscreteScheduler, DDIMScheduler,",
        ),
        (
            {"model": "geelong_hillbilly/Facechain", "input": "negative_prompt", "value": "x"},
            "input must be one of Facechain's inputs: samples, steps, guidance, width, height "
            "(got 'negative_prompt').",
        ),
        (
            {"model": PORTRAIT, "input": "seed", "value": "42"},
            "(got 'seed') (the prompt and the seed are each person's own).",
        ),
        (
            {"model": "nobody/nothing", "input": "steps", "value": "20"},
            "Unknown model 'nobody/nothing'. Available: ",
        ),
    ],
    ids=["out-of-range", "not-a-number", "unknown-choice", "input-not-taken", "seed", "model"],
)
async def test_a_bad_default_is_refused_naming_the_option(
    harness: Harness, admin: MemberActor, options: dict[str, object], words: str
) -> None:
    h = harness
    text = await say(h, admin, "default", **options)

    assert words in text
    assert await h.runtime.store.guilds.all_model_defaults(h.guild.id) == {}


async def test_default_autocompletes_the_models_inputs_and_their_values(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    inputs = await admin.autocomplete(h.channel, "settings default", "input", "", model=PORTRAIT)
    assert [c["value"] for c in inputs] == [
        "negative_prompt",
        "samples",
        "steps",
        "guidance",
        "clip_skip",
        "width",
        "height",
        "scheduler",
    ]
    assert inputs[2]["name"] == "steps — a whole number from 1 to 150"
    schedulers = await admin.autocomplete(
        h.channel, "settings default", "value", "ddim", model=PORTRAIT, input="scheduler"
    )
    assert [c["value"] for c in schedulers] == ["DDIMScheduler"]
    widths = await admin.autocomplete(
        h.channel, "settings default", "value", "", model=PORTRAIT, input="width"
    )
    assert [c["value"] for c in widths] == ["512", "768", "576"]


async def test_a_default_above_the_servers_cap_is_kept_and_capped(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    await say(h, admin, "limits", max_steps=25)
    text = await say(h, admin, "default", model=PORTRAIT, input="steps", value="40")
    assert text.endswith("This server's limit of 25 applies, so jobs use 25.")

    await h.alice.slash(h.channel, "imagine", prompt="a cat")
    await h.until((await h.last_job()).id, lambda j: j.task_id is not None)
    assert int(h.wiro.runs[-1].body["steps"]) == 25


async def test_clear_one_default_or_all_of_a_models(harness: Harness, admin: MemberActor) -> None:
    h = harness
    await say(h, admin, "default", model=PORTRAIT, input="steps", value="12")
    await say(h, admin, "default", model=PORTRAIT, input="scheduler", value="DDIMScheduler")
    await say(h, admin, "default", model=COMICS, input="steps", value="9")
    offered = await admin.autocomplete(h.channel, "settings clear", "input", "", model=PORTRAIT)
    assert offered == [
        {"name": "scheduler (now DDIMScheduler)", "value": "scheduler"},
        {"name": "steps (now 12)", "value": "steps"},
    ]

    text = await say(h, admin, "clear", model=PORTRAIT, input="steps")
    assert text == (
        "Removed this server's default for `steps` on Portrait+ (`wavymulder/portraitplus`)"
        " (the model's own, 30, applies)."
    )
    text = await say(h, admin, "clear", model=PORTRAIT, input="steps")
    assert text == "Portrait+ (`wavymulder/portraitplus`) has no server default for `steps`."
    await h.alice.slash(h.channel, "imagine", prompt="a cat")
    await h.until((await h.last_job()).id, lambda j: j.task_id is not None)
    assert int(h.wiro.runs[-1].body["steps"]) == 30
    assert h.wiro.runs[-1].body["scheduler"] == "DDIMScheduler"

    await say(h, admin, "default", model=PORTRAIT, input="steps", value="12")
    text = await say(h, admin, "clear", model=PORTRAIT)
    assert text == (
        "Removed 2 server defaults for Portrait+ (`wavymulder/portraitplus`); "
        "the model's own defaults apply."
    )
    assert await h.runtime.store.guilds.all_model_defaults(h.guild.id) == {COMICS: {"steps": 9}}


# -- models on and off ------------------------------------------------------------------------


async def test_a_disabled_model_is_no_longer_offered_or_run_until_enabled(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    text = await say(h, admin, "disable", model="adel_ai/comics-factory-v1")
    assert text.startswith("Comics Factory v1 (`Adel_AI/Comics-Factory-v1`) is off:")

    offered = await h.alice.autocomplete(h.channel, "imagine", "model", "")
    assert COMICS not in [c["value"] for c in offered]
    result = await h.alice.slash(h.channel, "imagine", prompt="a cat", model=COMICS)
    assert result.ephemeral
    assert "Adel_AI/Comics-Factory-v1 is turned off on this server." in h.message(result).content
    assert await h.job_count() == 0

    assert await say(h, admin, "disable", model=COMICS) == (
        "Comics Factory v1 (`Adel_AI/Comics-Factory-v1`) is already off."
    )
    assert [
        c["value"] for c in await admin.autocomplete(h.channel, "settings enable", "model", "")
    ] == [COMICS]
    assert COMICS not in [
        c["value"] for c in await admin.autocomplete(h.channel, "settings disable", "model", "")
    ]

    text = await say(h, admin, "enable", model=COMICS)
    assert (
        text == "Comics Factory v1 (`Adel_AI/Comics-Factory-v1`) is on: members can use it again."
    )
    result = await h.alice.slash(h.channel, "imagine", prompt="a cat", model=COMICS)
    assert not result.ephemeral
    assert await h.job_count() == 1
    assert await say(h, admin, "enable", model=COMICS) == (
        "Comics Factory v1 (`Adel_AI/Comics-Factory-v1`) is already on."
    )


async def test_the_default_model_and_the_last_model_stay_on(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    text = await say(h, admin, "disable", model=PORTRAIT)
    assert text == (
        "Portrait+ (`wavymulder/portraitplus`) is this server's default model, so it can't be "
        "turned off. Choose another default first with `/settings model`."
    )
    await say(h, admin, "model", model=COMICS)
    for model in ("geelong_hillbilly/Facechain", PORTRAIT, "ArsMachina/Ars-Niji-Style-v1", STUDIO):
        assert (await say(h, admin, "disable", model=model)).endswith(
            "is off: /imagine no longer offers or runs it on this server. "
            "Jobs already started go on."
        )
    # The default model is on, so some model always stays on.
    text = await say(h, admin, "disable", model=COMICS)
    assert "is this server's default model" in text
    guild = await h.runtime.store.guilds.get(h.guild.id)
    assert [m.slug for m in h.runtime.catalog.all() if guild.allows(m.slug)] == [COMICS]


# -- limits -----------------------------------------------------------------------------------


async def test_limits_cap_samples_and_steps_of_the_next_job(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    text = await say(h, admin, "limits", max_samples=2, max_steps=50)
    assert text.startswith("**Limits on this server (saved)**\nImages per job: at most 2\n")

    refused = await h.alice.slash(h.channel, "imagine", prompt="a cat", samples=4)
    assert refused.ephemeral
    assert h.message(refused).content == (
        "samples must be a whole number from 1 to 2 on this server (got 4)."
    )
    refused = await h.alice.slash(h.channel, "imagine", prompt="a cat", steps=80)
    assert "steps must be a whole number from 1 to 50 on this server (got 80)." in (
        h.message(refused).content
    )

    # Portrait+ makes 4 images by default: the server's cap brings that to 2.
    await h.alice.slash(h.channel, "imagine", prompt="a cat")
    await h.until((await h.last_job()).id, lambda j: j.task_id is not None)
    assert int(h.wiro.runs[-1].body["samples"]) == 2

    text = await say(h, admin, "limits", max_samples=0)
    assert "Images per job: the model's maximum\nSteps per job: at most 50" in text
    assert (await h.runtime.store.guilds.get(h.guild.id)).max_samples is None


async def test_limits_on_jobs_per_day_and_at_once(harness: Harness, admin: MemberActor) -> None:
    h = harness
    await say(h, admin, "limits", jobs_per_day=2, concurrent_per_user=1)

    await h.alice.slash(h.channel, "imagine", prompt="one")
    first = await h.until((await h.last_job()).id, lambda j: j.task_id is not None)
    second = await h.alice.slash(h.channel, "imagine", prompt="two")
    assert not second.ephemeral
    waiting = await h.last_job()
    # One at a time: the second waits for the first.
    assert (await h.runtime.engine.get(waiting.id)).status is JobState.WAITING  # type: ignore[union-attr]
    assert len(h.wiro.runs) == 1

    third = await h.alice.slash(h.channel, "imagine", prompt="three")
    assert third.ephemeral
    assert "You have used your 2 images per day on this server." in h.message(third).content

    await h.finish(first)
    await h.until(waiting.id, lambda j: j.task_id is not None)
    assert len(h.wiro.runs) == 2


async def test_limits_cannot_loosen_the_bots_own(harness: Harness, admin: MemberActor) -> None:
    h = harness
    text = await say(h, admin, "limits", concurrent_per_user=5)

    assert text == (
        "concurrent_per_user must be from 1 to 2 (got 5): the bot allows at most 2. "
        "0 removes this server's limit."
    )
    assert (await h.runtime.store.guilds.get(h.guild.id)).max_concurrent_per_user is None
    shown = await say(h, admin, "limits")
    assert shown.startswith("**Limits on this server**\n")


# -- NSFW policy ------------------------------------------------------------------------------


async def test_the_nsfw_policy_lets_nsfw_models_run_outside_age_restricted_channels(
    harness: Harness, admin: MemberActor
) -> None:
    h = harness
    refused = await h.alice.slash(h.channel, "imagine", prompt="a hero", model=STUDIO)
    assert refused.ephemeral
    assert "runs only in age-restricted channels" in h.message(refused).content

    text = await say(h, admin, "nsfw", allow_everywhere=True)
    assert text == (
        "NSFW-capable models now run in every channel; outside age-restricted channels their "
        "images are spoilered."
    )
    result = await h.alice.slash(h.channel, "imagine", prompt="a hero", model=STUDIO)
    assert not result.ephemeral
    job = await h.finish(await h.last_job())
    assert job.status is JobState.SUCCEEDED
    attachments = h.message(result).attachments
    assert attachments
    assert all(a.filename.startswith("SPOILER_") for a in attachments)

    text = await say(h, admin, "nsfw", allow_everywhere=False)
    assert text == "NSFW-capable models now run only in age-restricted channels."
    refused = await h.alice.slash(h.channel, "imagine", prompt="a hero", model=STUDIO)
    assert refused.ephemeral
