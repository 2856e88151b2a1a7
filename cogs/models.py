"""/models: the models this server may use, or one model's inputs and this server's overrides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.app_commands import Choice
from discord.ext import commands

from bot.catalog.validation import InvalidInput
from bot.discord_views.catalog import allowed_model_choices, model_embed, models_embed
from bot.discord_views.fit import CONTENT, ShortText, fit

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot


class Models(commands.Cog):
    def __init__(self, bot: WiroBot) -> None:
        self.bot = bot

    @app_commands.command(name="models", description="The models you can use here, or one model")
    @app_commands.guild_only()
    @app_commands.describe(model="Show this model's inputs, defaults and trigger words")
    async def models(
        self, interaction: discord.Interaction[Any], model: ShortText | None = None
    ) -> None:
        runtime = self.bot.runtime
        catalog = runtime.catalog
        guild = (
            await runtime.store.guilds.get(interaction.guild_id)
            if interaction.guild_id is not None
            else None
        )
        default_model = (guild.default_model if guild else None) or runtime.engine.default_model
        if model is None:
            models = [m for m in catalog.all() if guild is None or guild.allows(m.slug)]
            prices = runtime.engine.prices
            embed = models_embed(
                models,
                default_model=default_model,
                turned_off=len(catalog) - len(models),
                prices={m.slug: prices.list_price(m).words for m in models},
            )
            await interaction.response.send_message(embed=embed, ephemeral=True)
            return
        try:
            spec = catalog.require(model)
        except InvalidInput as exc:
            await interaction.response.send_message(fit(exc.message, CONTENT), ephemeral=True)
            return
        defaults = (
            await runtime.store.guilds.model_defaults(guild.guild_id, spec.slug) if guild else {}
        )
        price = runtime.engine.prices.list_price(spec).words
        embed = model_embed(spec, guild, defaults, default_model=default_model, price=price)
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @models.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        return await allowed_model_choices(self.bot.runtime, interaction.guild_id, current)


async def setup(bot: WiroBot) -> None:
    await bot.add_cog(Models(bot))
