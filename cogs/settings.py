"""/settings: what a server's admins choose for the bot on their server.

The default model, per-model defaults for inputs, which models are on, limits and the NSFW
policy. Stored in SQLite (store.guilds) and read by the engine for every job, so a change
applies to the next one. Discord shows the group only to members with Manage Server (its
default permission); the bot checks that permission again, because a server can grant the
command to others in its integration settings.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.catalog.spec import InputKind, InputSpec, ModelSpec
from bot.catalog.validation import InvalidInput, coerce, describe_allowed
from bot.discord_views.catalog import MAX_CHOICES, model_choices, shown_value
from bot.store import GuildSettings

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

#: Inputs a server may not set a default for: the prompt is the person's, and a fixed seed
#: would make every image (and every Reroll) the same.
NOT_DEFAULTABLE = frozenset({"prompt", "seed"})
MONTH = 30 * 86_400.0
COLOUR = discord.Colour.blurple()

REFUSAL = "Only members with **Manage Server** can change the bot's settings on this server."


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class ServerSettings(
    commands.GroupCog,
    group_name="settings",
    group_description="The bot's settings on this server (Manage Server)",
):
    def __init__(self, bot: WiroBot) -> None:
        self.bot = bot

    # -- commands ------------------------------------------------------------------------------

    @app_commands.command(name="show", description="Everything this server has set, and its spend")
    async def show(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        store = self.bot.runtime.store
        guild = await store.guilds.get(guild_id)
        defaults = await store.guilds.all_model_defaults(guild_id)
        total = await store.jobs.spend(guild_id=guild_id)
        month = await store.jobs.spend(guild_id=guild_id, since=time.time() - MONTH)
        embed = self._settings_embed(guild, defaults, total, month)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="model", description="The model this server uses by default")
    @app_commands.describe(model="The model; leave empty to use the bot's default")
    async def model(self, interaction: discord.Interaction[Any], model: str | None = None) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        guild = await self.bot.runtime.store.guilds.get(guild_id)
        try:
            spec = self._require(model or self.bot.runtime.engine.default_model)
        except InvalidInput as exc:
            await _say(interaction, exc.message)
            return
        if not guild.allows(spec.slug):
            await _say(
                interaction,
                f"{_name(spec)} is turned off on this server. Turn it on first with "
                "`/settings enable`, or choose one of: "
                f"{', '.join(m.slug for m in self._allowed(guild))}.",
            )
            return
        await self._save(guild.with_changes(default_model=spec.slug if model else None))
        if model:
            text = f"New images on this server use {_name(spec)} unless someone picks a model."
        else:
            text = f"This server uses the bot's default model again: {_name(spec)}."
        await _say(interaction, text)

    @app_commands.command(name="default", description="This server's default for one input")
    @app_commands.describe(
        model="The model", input="The input (as /imagine names it)", value="Its default here"
    )
    async def default(
        self,
        interaction: discord.Interaction[Any],
        model: str,
        input: str,
        value: Range[str, 1, 2000],
    ) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        try:
            spec = self._require(model)
            option = self._defaultable_input(spec, input)
            chosen = coerce(option, value)
        except InvalidInput as exc:
            await _say(interaction, exc.message)
            return
        store = self.bot.runtime.store
        await store.guilds.set_model_default(guild_id, spec.slug, option.option, chosen)
        text = (
            f"{_name(spec)} now uses `{option.option}` **{shown_value(option, chosen)}** on this "
            "server unless someone gives another value."
        )
        guild = await store.guilds.get(guild_id)
        cap = {"samples": guild.max_samples, "steps": guild.max_steps}.get(option.option)
        if cap is not None and isinstance(chosen, int | float) and chosen > cap:
            text += f" This server's limit of {cap} applies, so jobs use {cap}."
        await _say(interaction, text)

    @app_commands.command(name="clear", description="Remove this server's defaults for a model")
    @app_commands.describe(model="The model", input="Only this input (default: all of them)")
    async def clear(
        self, interaction: discord.Interaction[Any], model: str, input: str | None = None
    ) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        try:
            spec = self._require(model)
        except InvalidInput as exc:
            await _say(interaction, exc.message)
            return
        option = input.strip() if input else None
        removed = await self.bot.runtime.store.guilds.clear_model_defaults(
            guild_id, spec.slug, option
        )
        if option is None:
            text = (
                f"Removed {_count(removed, 'server default')} for {_name(spec)}; "
                "the model's own defaults apply."
                if removed
                else f"{_name(spec)} has no server defaults."
            )
        elif removed:
            own = spec.input(option)
            back = (
                f" (the model's own, {shown_value(own, own.default)}, applies)"
                if own is not None and own.default is not None
                else ""
            )
            text = f"Removed this server's default for `{option}` on {_name(spec)}{back}."
        else:
            text = f"{_name(spec)} has no server default for `{option}`."
        await _say(interaction, text)

    @app_commands.command(name="enable", description="Let members use a model on this server")
    @app_commands.describe(model="A model turned off on this server")
    async def enable(self, interaction: discord.Interaction[Any], model: str) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        guild = await self.bot.runtime.store.guilds.get(guild_id)
        try:
            spec = self._require(model)
        except InvalidInput as exc:
            await _say(interaction, exc.message)
            return
        if guild.allows(spec.slug):
            await _say(interaction, f"{_name(spec)} is already on.")
            return
        await self._save(guild.with_changes(disabled_models=guild.disabled_models - {_key(spec)}))
        await _say(interaction, f"{_name(spec)} is on: members can use it again.")

    @app_commands.command(name="disable", description="Turn a model off on this server")
    @app_commands.describe(model="A model members may use now")
    async def disable(self, interaction: discord.Interaction[Any], model: str) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        guild = await self.bot.runtime.store.guilds.get(guild_id)
        try:
            spec = self._require(model)
        except InvalidInput as exc:
            await _say(interaction, exc.message)
            return
        if not guild.allows(spec.slug):
            await _say(interaction, f"{_name(spec)} is already off.")
            return
        if _key(spec) == self._default_model(guild).lower():
            await _say(
                interaction,
                f"{_name(spec)} is this server's default model, so it can't be turned off. "
                "Choose another default first with `/settings model`.",
            )
            return
        if [m.slug for m in self._allowed(guild)] == [spec.slug]:
            await _say(interaction, f"{_name(spec)} is the last model on: one must stay on.")
            return
        await self._save(guild.with_changes(disabled_models=guild.disabled_models | {_key(spec)}))
        await _say(
            interaction,
            f"{_name(spec)} is off: /imagine no longer offers or runs it on this server. "
            "Jobs already started go on.",
        )

    @app_commands.command(name="limits", description="Limits for members; 0 removes a limit")
    @app_commands.describe(
        max_samples="Most images per job (0: the model's own maximum)",
        max_steps="Most denoising steps per job (0: the model's own maximum)",
        concurrent_per_user="Jobs a member may run at once (0: the bot's limit)",
        jobs_per_day="Jobs a member may start in 24 hours (0: the bot's limit)",
    )
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        max_samples: Range[int, 0, 100] | None = None,
        max_steps: Range[int, 0, 1000] | None = None,
        concurrent_per_user: Range[int, 0, 100] | None = None,
        jobs_per_day: Range[int, 0, 100_000] | None = None,
    ) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        guild = await self.bot.runtime.store.guilds.get(guild_id)
        jobs = self.bot.runtime.settings.jobs
        # Server limits only tighten the bot's own: the bot's owner pays for the jobs.
        for option, value, most in (
            ("concurrent_per_user", concurrent_per_user, jobs.max_concurrent_per_user),
            ("jobs_per_day", jobs_per_day, jobs.max_jobs_per_user_per_day or None),
        ):
            if value and most is not None and value > most:
                await _say(
                    interaction,
                    f"{option} must be from 1 to {most} (got {value}): the bot allows at most "
                    f"{most}. 0 removes this server's limit.",
                )
                return
        changes: dict[str, int | None] = {}
        for field, value in (
            ("max_samples", max_samples),
            ("max_steps", max_steps),
            ("max_concurrent_per_user", concurrent_per_user),
            ("max_jobs_per_user_per_day", jobs_per_day),
        ):
            if value is not None:
                changes[field] = value or None
        if changes:
            guild = guild.with_changes(**changes)
            await self._save(guild)
        title = "Limits on this server" + (" (saved)" if changes else "")
        await _say(interaction, f"**{title}**\n{self._limit_lines(guild)}")

    @app_commands.command(name="nsfw", description="Where NSFW-capable models may run")
    @app_commands.describe(
        allow_everywhere="True: in every channel (images spoilered outside age-restricted "
        "ones); False: only in age-restricted channels"
    )
    async def nsfw(self, interaction: discord.Interaction[Any], allow_everywhere: bool) -> None:
        guild_id = await self._admin_guild(interaction)
        if guild_id is None:
            return
        guild = await self.bot.runtime.store.guilds.get(guild_id)
        await self._save(guild.with_changes(nsfw_anywhere=allow_everywhere))
        await _say(
            interaction, "NSFW-capable models now run " + _nsfw_words(allow_everywhere) + "."
        )

    # -- autocomplete --------------------------------------------------------------------------

    @model.autocomplete("model")
    async def enabled_model_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return await self._enabled_choices(interaction, current)

    @disable.autocomplete("model")
    async def disable_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return await self._enabled_choices(interaction, current)

    @enable.autocomplete("model")
    async def disabled_model_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        guild = await self._guild(interaction)
        turned_off = [m.slug for m in self.bot.runtime.catalog.all() if not guild.allows(m.slug)]
        return self._model_choices(current, turned_off)

    @default.autocomplete("model")
    async def any_model_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return self._model_choices(current, None)

    @clear.autocomplete("model")
    async def clear_model_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return self._model_choices(current, None)

    @default.autocomplete("input")
    async def input_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        model = self._typed_model(interaction)
        if model is None:
            return []
        needle = str(current).strip().casefold()
        choices = []
        for spec in model.inputs:
            if spec.option in NOT_DEFAULTABLE:
                continue
            if needle in spec.option.casefold() or needle in spec.label.casefold():
                label = f"{spec.option} — {describe_allowed(spec)}"
                choices.append(Choice(name=_fit(label), value=spec.option))
        return choices[:MAX_CHOICES]

    @clear.autocomplete("input")
    async def set_input_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        model = self._typed_model(interaction)
        if model is None or interaction.guild_id is None:
            return []
        store = self.bot.runtime.store
        defaults = await store.guilds.model_defaults(interaction.guild_id, model.slug)
        needle = str(current).strip().casefold()
        return [
            Choice(
                name=_fit(f"{option} (now {shown_value(model.input(option), value)})"), value=option
            )
            for option, value in defaults.items()
            if needle in option.casefold()
        ][:MAX_CHOICES]

    @default.autocomplete("value")
    async def value_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        """A choice input's choices, or a size input's presets; free text otherwise."""
        model = self._typed_model(interaction)
        typed = getattr(interaction.namespace, "input", None)
        spec = model.input(str(typed).strip()) if model and typed else None
        if model is None or spec is None:
            return []
        needle = str(current).strip().casefold()
        offered: list[tuple[str, str]] = []
        if spec.kind is InputKind.CHOICE:
            offered = [(c.label or c.value, c.label or c.value) for c in spec.choices]
        elif spec.option in ("width", "height"):
            seen: set[int] = set()
            for preset in model.size_presets:
                size = preset.width if spec.option == "width" else preset.height
                if size not in seen:
                    seen.add(size)
                    offered.append((f"{size} ({preset.label})", str(size)))
        return [
            Choice(name=_fit(name), value=value)
            for name, value in offered
            if needle in name.casefold()
        ][:MAX_CHOICES]

    # -- helpers -------------------------------------------------------------------------------

    async def _admin_guild(self, interaction: discord.Interaction[Any]) -> int | None:
        """The server's id when the member may change its settings; otherwise tells them why
        not and returns None."""
        if interaction.guild_id is None:
            await _say(interaction, "Settings belong to a server: use this command in one.")
            return None
        if not interaction.permissions.manage_guild:
            await _say(interaction, REFUSAL)
            return None
        return interaction.guild_id

    async def _guild(self, interaction: discord.Interaction[Any]) -> GuildSettings:
        guild_id = interaction.guild_id or 0
        return await self.bot.runtime.store.guilds.get(guild_id)

    async def _save(self, guild: GuildSettings) -> None:
        await self.bot.runtime.store.guilds.save(guild)

    def _require(self, slug: str) -> ModelSpec:
        return self.bot.runtime.catalog.require(slug)

    def _allowed(self, guild: GuildSettings) -> list[ModelSpec]:
        return [m for m in self.bot.runtime.catalog.all() if guild.allows(m.slug)]

    def _default_model(self, guild: GuildSettings) -> str:
        return guild.default_model or self.bot.runtime.engine.default_model

    def _typed_model(self, interaction: discord.Interaction[Any]) -> ModelSpec | None:
        typed = getattr(interaction.namespace, "model", None)
        return self.bot.runtime.catalog.get(str(typed)) if typed else None

    async def _enabled_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        guild = await self._guild(interaction)
        return self._model_choices(current, [m.slug for m in self._allowed(guild)])

    def _model_choices(self, current: str, allowed: list[str] | None) -> list[Choice[str]]:
        catalog = self.bot.runtime.catalog
        return model_choices(catalog.search(str(current), allowed=allowed, limit=MAX_CHOICES))

    @staticmethod
    def _defaultable_input(model: ModelSpec, typed: str) -> InputSpec:
        wanted = typed.strip().casefold()
        for spec in model.inputs:
            if spec.option in NOT_DEFAULTABLE:
                continue
            if wanted in (spec.option.casefold(), spec.name.casefold()):
                return spec
        options = [s.option for s in model.inputs if s.option not in NOT_DEFAULTABLE]
        why = (
            " (the prompt and the seed are each person's own)" if wanted in NOT_DEFAULTABLE else ""
        )
        raise InvalidInput(
            "input",
            f"input must be one of {model.display_name}'s inputs: {', '.join(options)}"
            f" (got {typed.strip()!r}){why}.",
            ", ".join(options),
        )

    def _limit_lines(self, guild: GuildSettings) -> str:
        jobs = self.bot.runtime.settings.jobs
        bot_daily = jobs.max_jobs_per_user_per_day
        lines = [
            "Images per job: "
            + (f"at most {guild.max_samples}" if guild.max_samples else "the model's maximum"),
            "Steps per job: "
            + (f"at most {guild.max_steps}" if guild.max_steps else "the model's maximum"),
            "Jobs at once per member: "
            + (
                str(guild.max_concurrent_per_user)
                if guild.max_concurrent_per_user
                else f"{jobs.max_concurrent_per_user} (the bot's limit)"
            ),
            "Jobs per member per day: "
            + (
                str(guild.max_jobs_per_user_per_day)
                if guild.max_jobs_per_user_per_day
                else (f"{bot_daily} (the bot's limit)" if bot_daily else "no limit")
            ),
        ]
        return "\n".join(lines)

    def _settings_embed(
        self,
        guild: GuildSettings,
        defaults: dict[str, dict[str, Any]],
        total: tuple[int, float],
        month: tuple[int, float],
    ) -> discord.Embed:
        catalog = self.bot.runtime.catalog
        embed = discord.Embed(title="Settings on this server", colour=COLOUR)
        default = catalog.get(self._default_model(guild))
        shown = _name(default) if default else f"`{self._default_model(guild)}`"
        if guild.default_model is None:
            shown += " (the bot's default)"
        embed.add_field(name="Default model", value=shown, inline=False)
        off = [m for m in catalog.all() if not guild.allows(m.slug)]
        embed.add_field(
            name="Models turned off",
            value=", ".join(_name(m) for m in off)[:1024] if off else "None: every model is on",
            inline=False,
        )
        embed.add_field(name="Limits", value=self._limit_lines(guild), inline=False)
        embed.add_field(
            name="NSFW-capable models",
            value="Run " + _nsfw_words(guild.nsfw_anywhere),
            inline=False,
        )
        lines = []
        for slug, values in defaults.items():
            model = catalog.get(slug)
            parts = " · ".join(
                f"{option} {shown_value(model.input(option) if model else None, value)}"
                for option, value in values.items()
            )
            lines.append(f"{_name(model) if model else f'`{slug}`'}: {parts}")
        embed.add_field(
            name="Server defaults",
            value="\n".join(lines)[:1024] if lines else "None: the models' own defaults apply",
            inline=False,
        )
        embed.add_field(
            name="Spend",
            value=f"{_count(total[0], 'job')}, {_usd(total[1])} in all\n"
            f"{_count(month[0], 'job')}, {_usd(month[1])} in the last 30 days",
            inline=False,
        )
        return embed


def _name(model: ModelSpec) -> str:
    return f"{model.display_name} (`{model.slug}`)"


def _key(model: ModelSpec) -> str:
    """How GuildSettings keeps a slug among the disabled models."""
    return model.slug.lower()


def _nsfw_words(anywhere: bool) -> str:
    if anywhere:
        return "in every channel; outside age-restricted channels their images are spoilered"
    return "only in age-restricted channels"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _usd(amount: float) -> str:
    return "$" + f"{amount:.4f}".rstrip("0").rstrip(".")


def _fit(text: str) -> str:
    return text if len(text) <= 100 else text[:99] + "…"


async def _say(interaction: discord.Interaction[Any], text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True)


async def setup(bot: WiroBot) -> None:
    await bot.add_cog(ServerSettings(bot))
