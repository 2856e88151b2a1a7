"""/history: past jobs on this server, newest first, a page at a time; or one job in full.

One command with options rather than subcommands (Discord allows one or the other). Who may
see what is decided in bot/discord_views/history.py: your own jobs, or with `scope:server`
every job of this server in a channel you can see.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.app_commands import Choice, Range
from discord.ext import commands

from bot.catalog.validation import InvalidInput
from bot.discord_views.catalog import MAX_CHOICES, model_choices
from bot.discord_views.fit import CONTENT, ShortText, fit
from bot.discord_views.history import (
    MAX_SEARCH,
    HistoryPageButton,
    HistoryRequest,
    history_page,
    show_job,
)

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot


class History(commands.Cog):
    def __init__(self, bot: WiroBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(HistoryPageButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(HistoryPageButton)

    @app_commands.command(name="history", description="Images made on this server, newest first")
    @app_commands.guild_only()
    @app_commands.describe(
        scope="Your jobs (default), or every job on this server in channels you can see",
        model="Only this model's jobs",
        search="Only prompts containing these words",
        job="Show this one job in full, with its images",
    )
    async def history(
        self,
        interaction: discord.Interaction[Any],
        scope: Literal["mine", "server"] = "mine",
        model: ShortText | None = None,
        search: Range[str, 1, MAX_SEARCH] | None = None,
        job: Range[int, 1] | None = None,
    ) -> None:
        if job is not None:
            await show_job(interaction, job)
            return
        slug = None
        if model:
            try:
                slug = self.bot.runtime.catalog.require(model).slug
            except InvalidInput as exc:
                await interaction.response.send_message(fit(exc.message, CONTENT), ephemeral=True)
                return
        request = HistoryRequest(
            user_id=interaction.user.id,
            server=scope == "server",
            model=slug,
            search=search.strip() if search and search.strip() else None,
        )
        embed, view = await history_page(interaction, request)
        if view is None:
            await interaction.response.send_message(embed=embed, ephemeral=True)
        else:
            await interaction.response.send_message(embed=embed, view=view, ephemeral=True)

    @history.autocomplete("model")
    async def model_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[Choice[str]]:
        # Every model: old jobs may have used one the server has turned off since.
        catalog = self.bot.runtime.catalog
        return model_choices(catalog.search(str(current), limit=MAX_CHOICES))


async def setup(bot: WiroBot) -> None:
    await bot.add_cog(History(bot))
