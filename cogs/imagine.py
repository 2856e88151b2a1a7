"""/imagine: make images from a prompt with one of the models this server allows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.catalog.spec import ModelSpec
from bot.discord_views.catalog import MAX_CHOICES, allowed_model_choices
from bot.discord_views.fit import PromptText, ShortText, choice_name
from bot.discord_views.launch import requester_of, start_job
from bot.jobs.engine import JobRequest

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot


class Imagine(commands.Cog):
    def __init__(self, bot: WiroBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Make images from a prompt with a Wiro model")
    @app_commands.guild_only()
    @app_commands.describe(
        prompt="What to draw",
        model="The model (default: this server's)",
        negative_prompt="What to keep out of the image",
        samples="How many images to make",
        steps="Denoising steps: more is slower, often finer",
        guidance="How closely to follow the prompt",
        seed="Same seed and settings give the same image; random if empty",
        width="Image width in pixels",
        height="Image height in pixels",
        scheduler="Sampling scheduler",
        clip_skip="Skip the last CLIP layers (higher is looser)",
        refiner="Run the SDXL refiner after the base model",
        high_noise_frac="Share of the steps done by the base model before the refiner",
        refiner_steps="Steps the refiner runs",
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: PromptText,
        model: ShortText | None = None,
        negative_prompt: PromptText | None = None,
        samples: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int | None = None,
        width: int | None = None,
        height: int | None = None,
        scheduler: ShortText | None = None,
        clip_skip: int | None = None,
        refiner: ShortText | None = None,
        high_noise_frac: float | None = None,
        refiner_steps: int | None = None,
    ) -> None:
        options: dict[str, object] = {
            "negative_prompt": negative_prompt,
            "samples": samples,
            "steps": steps,
            "guidance": guidance,
            "seed": seed,
            "width": width,
            "height": height,
            "scheduler": scheduler,
            "clip_skip": clip_skip,
            "refiner": refiner,
            "high_noise_frac": high_noise_frac,
            "refiner_steps": refiner_steps,
        }
        request = JobRequest(prompt, requester_of(interaction), model or None, options)
        await start_job(interaction, request)

    # -- autocomplete --------------------------------------------------------------------------

    @imagine.autocomplete("model")
    async def model_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return await allowed_model_choices(self.bot.runtime, interaction.guild_id, current)

    @imagine.autocomplete("scheduler")
    async def scheduler_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return await self._input_choices(interaction, "scheduler", current)

    @imagine.autocomplete("refiner")
    async def refiner_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return await self._input_choices(interaction, "refiner", current)

    @imagine.autocomplete("width")
    async def width_choices(
        self, interaction: discord.Interaction[Any], current: int | str
    ) -> list[Choice[int]]:
        return await self._size_choices(interaction, "width", current)

    @imagine.autocomplete("height")
    async def height_choices(
        self, interaction: discord.Interaction[Any], current: int | str
    ) -> list[Choice[int]]:
        return await self._size_choices(interaction, "height", current)

    async def _chosen_model(self, interaction: discord.Interaction[Any]) -> ModelSpec | None:
        """The model the command will run with, as far as the options typed so far tell."""
        catalog = self.bot.runtime.catalog
        typed = getattr(interaction.namespace, "model", None)
        if typed:
            return catalog.get(str(typed))
        if interaction.guild_id is not None:
            guild = await self.bot.runtime.store.guilds.recent(interaction.guild_id)
            if guild.default_model:
                return catalog.get(guild.default_model)
        return catalog.get(self.bot.runtime.engine.default_model)

    async def _input_choices(
        self, interaction: discord.Interaction[Any], option: str, current: str
    ) -> list[Choice[str]]:
        model = await self._chosen_model(interaction)
        spec = model.input(option) if model else None
        if spec is None:
            return []
        needle = str(current).strip().casefold()
        choices = []
        for choice in spec.choices:
            shown = choice.label or choice.value
            if needle in shown.casefold() or needle in choice.value.casefold():
                # An empty value cannot be a Discord choice; its label resolves to it as well.
                choices.append(Choice(name=shown[:100], value=(choice.value or shown)[:100]))
        return choices[:MAX_CHOICES]

    async def _size_choices(
        self, interaction: discord.Interaction[Any], option: str, current: int | str
    ) -> list[Choice[int]]:
        model = await self._chosen_model(interaction)
        if model is None:
            return []
        needle = str(current).strip()
        choices: list[Choice[int]] = []
        seen: set[int] = set()
        for preset in model.size_presets:
            value = preset.width if option == "width" else preset.height
            if value in seen or not str(value).startswith(needle):
                continue
            seen.add(value)
            choices.append(Choice(name=choice_name(f"{value} ({preset.label})"), value=value))
        return choices[:MAX_CHOICES]


async def setup(bot: WiroBot) -> None:
    await bot.add_cog(Imagine(bot))
