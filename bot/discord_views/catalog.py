"""Models in Discord: autocomplete choices, the /models list and one model's inputs.

Pure functions of the catalog's specs and a server's settings: no I/O, no Discord calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import discord
from discord.app_commands import Choice

from bot.catalog.spec import InputKind, InputSpec, ModelSpec
from bot.catalog.validation import describe_allowed, format_number
from bot.discord_views.fit import CHOICE_NAME, fit, fit_embed
from bot.runtime import Runtime
from bot.store import GuildSettings

#: Discord shows at most 25 autocomplete choices.
MAX_CHOICES = 25
INFO = discord.Colour.blurple()

_VALUE_LIMIT = 60


def model_label(model: ModelSpec) -> str:
    """An autocomplete choice's name, at most 100 characters: "Portrait+ — SD 1.5 Dream…"."""
    description = model.description
    if "—" in description:
        description = description.split("—", 1)[1].strip()
    label = f"{model.display_name} — {description}" if description else model.display_name
    return fit(label, CHOICE_NAME)


def model_choices(models: Iterable[ModelSpec]) -> list[Choice[str]]:
    return [Choice(name=model_label(m), value=m.slug) for m in models][:MAX_CHOICES]


async def allowed_model_choices(
    runtime: Runtime, guild_id: int | None, current: str
) -> list[Choice[str]]:
    """Autocomplete for a `model` option: the models this server allows matching `current`."""
    catalog = runtime.catalog
    allowed: list[str] | None = None
    if guild_id is not None:
        guild = await runtime.store.guilds.recent(guild_id)
        allowed = [m.slug for m in catalog.all() if guild.allows(m.slug)]
    return model_choices(catalog.search(current, allowed=allowed, limit=MAX_CHOICES))


def short_description(model: ModelSpec) -> str:
    """The description without the leading "Name — " the seeds repeat."""
    text = model.description.strip()
    prefix = f"{model.display_name} —"
    return text[len(prefix) :].strip() if text.startswith(prefix) else text


def shown_value(spec: InputSpec | None, value: object) -> str:
    """A stored value as people read it: a choice by its label, numbers without noise."""
    if spec is not None and spec.kind is InputKind.CHOICE:
        for choice in spec.choices:
            if choice.value == value:
                return choice.label or choice.value or "''"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return format_number(value)
    text = str(value)
    return text if len(text) <= _VALUE_LIMIT else text[: _VALUE_LIMIT - 1] + "…"


def models_embed(
    models: list[ModelSpec],
    *,
    default_model: str,
    turned_off: int = 0,
    prices: Mapping[str, str] | None = None,
) -> discord.Embed:
    """/models: the models this server may use, one short paragraph each."""
    embed = discord.Embed(title="Models on this server", colour=INFO)
    lines: list[str] = []
    for model in models:
        flags = [model.base_model]
        if model.nsfw:
            flags.append("NSFW-capable")
        if model.slug.casefold() == default_model.casefold():
            flags.append("**default**")
        if prices and prices.get(model.slug, "unknown") != "unknown":
            flags.append(f"{prices[model.slug]} a run")
        lines.append(
            f"**{model.display_name}** (`{model.slug}`) · {' · '.join(flags)}\n"
            f"{short_description(model)}"
        )
    embed.description = "\n\n".join(lines)[:4096] if lines else "No model is enabled here."
    footer = "/models model:<name> shows a model's inputs."
    if turned_off:
        footer = f"{turned_off} more turned off by the server's admins. {footer}"
    embed.set_footer(text=footer)
    return fit_embed(embed)


def model_embed(
    model: ModelSpec,
    guild: GuildSettings | None,
    server_defaults: Mapping[str, object],
    *,
    default_model: str,
    price: str | None = None,
) -> discord.Embed:
    """/models model:…: what one model takes, its defaults, and this server's overrides."""
    embed = discord.Embed(title=f"{model.display_name} (`{model.slug}`)", colour=INFO)
    lines = [short_description(model), ""]
    if guild is not None and not guild.allows(model.slug):
        lines.insert(0, "**Turned off on this server.**")
    lines.append("**Inputs**")
    caps = _caps(guild)
    for spec in model.inputs:
        lines.append(_input_line(spec, server_defaults, caps))
    embed.description = "\n".join(lines)[:4096]
    embed.add_field(name="Base model", value=model.base_model or "unknown", inline=True)
    embed.add_field(name="NSFW-capable", value="yes" if model.nsfw else "no", inline=True)
    if price is not None:
        embed.add_field(name="Price", value=f"{price} a run with its defaults", inline=True)
    if model.slug.casefold() == default_model.casefold():
        embed.add_field(name="Default", value="This server's default model", inline=True)
    if model.trigger_words:
        words = ", ".join(f"`{w}`" for w in model.trigger_words)
        embed.add_field(name="Trigger words", value=words[:1024], inline=False)
    if model.size_presets:
        sizes = ", ".join(f"{p.width}×{p.height}" for p in model.size_presets)
        embed.add_field(name="Sizes", value=sizes[:1024], inline=False)
    return fit_embed(embed)


def _input_line(
    spec: InputSpec, server_defaults: Mapping[str, object], caps: Mapping[str, int]
) -> str:
    parts = [f"`{spec.option}`" + (" (required)" if spec.required else ""), describe_allowed(spec)]
    if spec.kind is InputKind.SEED:
        parts.append("random unless given")
    elif spec.default is not None:
        parts.append(f"default {shown_value(spec, spec.default)}")
    if spec.option in caps:
        parts.append(f"at most {caps[spec.option]} on this server")
    if spec.option in server_defaults:
        parts.append(f"**this server: {shown_value(spec, server_defaults[spec.option])}**")
    return " · ".join(parts)


def _caps(guild: GuildSettings | None) -> dict[str, int]:
    if guild is None:
        return {}
    caps = {"samples": guild.max_samples, "steps": guild.max_steps}
    return {option: cap for option, cap in caps.items() if cap is not None}
