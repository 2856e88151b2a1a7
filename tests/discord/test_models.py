"""/models: the list this server may use, and one model's inputs with this server's overrides."""

from __future__ import annotations

from tests.discord.conftest import Harness


async def test_models_lists_the_models_this_server_allows(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "models")

    assert result.ephemeral
    embed = h.message(result).embeds[0]
    assert embed.title == "Models on this server"
    text = embed.description or ""
    for model in h.runtime.catalog.all():
        assert f"**{model.display_name}** (`{model.slug}`)" in text
    assert (
        "**Portrait+** (`wavymulder/portraitplus`) · Stable Diffusion 1.5 DreamBooth · **default**"
        " · about $0.01 a run"
        "\nSD 1.5 DreamBooth for close-up portraits"
    ) in text
    studio = "(`Hevok/Studio-Trigger`) · SDXL LoRA (Pony) · NSFW-capable · about $0.01 a run\n"
    assert studio in text

    guild = await h.runtime.store.guilds.get(h.guild.id)
    await h.runtime.store.guilds.save(
        guild.with_changes(
            disabled_models=frozenset({"hevok/studio-trigger"}),
            default_model="Adel_AI/Comics-Factory-v1",
        )
    )
    embed = h.message(await h.alice.slash(h.channel, "models")).embeds[0]
    assert "Studio-Trigger" not in (embed.description or "")
    assert "(`Adel_AI/Comics-Factory-v1`) · Flux LoRA · **default**" in (embed.description or "")
    assert (embed.footer.text or "").startswith("1 more turned off by the server's admins.")


async def test_one_model_shows_inputs_defaults_trigger_words_and_server_overrides(
    harness: Harness,
) -> None:
    h = harness
    await h.runtime.store.guilds.set_model_default(
        h.guild.id, "wavymulder/portraitplus", "steps", 20
    )
    await h.runtime.store.guilds.set_model_default(
        h.guild.id, "wavymulder/portraitplus", "scheduler", "DDIMScheduler"
    )
    guild = await h.runtime.store.guilds.get(h.guild.id)
    await h.runtime.store.guilds.save(guild.with_changes(max_samples=2))

    result = await h.alice.slash(h.channel, "models", model="wavymulder/portraitplus")

    assert result.ephemeral
    embed = h.message(result).embeds[0]
    assert embed.title == "Portrait+ (`wavymulder/portraitplus`)"
    lines = (embed.description or "").splitlines()
    assert lines[0] == "SD 1.5 DreamBooth for close-up portraits"
    assert "`prompt` (required) · text of at most 2000 characters" in lines
    assert "`steps` · a whole number from 1 to 150 · default 30 · **this server: 20**" in lines
    assert "`samples` · a whole number from 1 to 4 · default 4 · at most 2 on this server" in lines
    assert "`seed` · a whole number from 0 to 4294967295 · random unless given" in lines
    scheduler = next(line for line in lines if line.startswith("`scheduler`"))
    assert scheduler.startswith("`scheduler` · one of: EulerDiscreteScheduler, DDIMScheduler,")
    assert scheduler.endswith("· default EulerDiscreteScheduler · **this server: DDIMScheduler**")
    fields = {f.name: f.value for f in embed.fields}
    assert fields["Trigger words"] == "`portrait+ style`"
    assert fields["Base model"] == "Stable Diffusion 1.5 DreamBooth"
    assert fields["NSFW-capable"] == "no"
    assert fields["Default"] == "This server's default model"
    assert fields["Sizes"].startswith("512×512")


async def test_one_model_by_any_case_and_choice_labels(harness: Harness) -> None:
    h = harness
    await h.runtime.store.guilds.set_model_default(
        h.guild.id, "Hevok/Studio-Trigger", "refiner", "--only_base_model"
    )
    result = await h.alice.slash(h.channel, "models", model="hevok/studio-trigger")

    embed = h.message(result).embeds[0]
    lines = (embed.description or "").splitlines()
    assert "`refiner` · one of: NO, YES · default YES · **this server: NO**" in lines
    assert {f.name: f.value for f in embed.fields}["NSFW-capable"] == "yes"
    assert "`score_9`, `score_8_up`" in {f.name: f.value for f in embed.fields}["Trigger words"]


async def test_an_unknown_model_is_refused_with_the_models_there_are(harness: Harness) -> None:
    h = harness
    result = await h.alice.slash(h.channel, "models", model="nobody/nothing")

    assert result.ephemeral
    assert h.message(result).content.startswith(
        "Unknown model 'nobody/nothing'. Available: geelong_hillbilly/Facechain,"
    )


async def test_a_turned_off_model_says_so_and_is_not_offered(harness: Harness) -> None:
    h = harness
    guild = await h.runtime.store.guilds.get(h.guild.id)
    await h.runtime.store.guilds.save(
        guild.with_changes(disabled_models=frozenset({"geelong_hillbilly/facechain"}))
    )
    choices = await h.alice.autocomplete(h.channel, "models", "model", "")
    assert "geelong_hillbilly/Facechain" not in [c["value"] for c in choices]
    assert len(choices) == len(h.runtime.catalog) - 1

    result = await h.alice.slash(h.channel, "models", model="geelong_hillbilly/Facechain")
    assert (h.message(result).embeds[0].description or "").startswith(
        "**Turned off on this server.**"
    )
