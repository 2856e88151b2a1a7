"""/usage: what this server's jobs cost, by member, model and day, with a chart; and the
budget alerts that go out as jobs finish."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot.discord_views.spend import BalanceAlert, announce_crossings, usage_chart, usage_embed
from bot.jobs.events import EventKind, JobEvent
from bot.jobs.usage import period_start, period_words

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

log = logging.getLogger(__name__)

#: How often the servers with a budget and an alerts channel are looked at.
ALERT_INTERVAL = 60.0

SERVER_ONLY = (
    "Only members with **Manage Server** can see the whole server's spend. "
    "`/usage scope:mine` shows yours."
)


class UsageCog(commands.Cog, name="Usage"):
    def __init__(self, bot: WiroBot) -> None:
        self.bot = bot
        #: Called by the Discord layer when the engine pauses on Wiro's code 97.
        self.balance = BalanceAlert(bot)
        self._sending: set[asyncio.Task[None]] = set()
        self._alerts = tasks.loop(seconds=ALERT_INTERVAL)(self._look)
        self._alerts.before_loop(bot.wait_until_ready)

    async def cog_load(self) -> None:
        self._alerts.start()
        pauses = (EventKind.SUBMISSIONS_PAUSED, EventKind.SUBMISSIONS_RESUMED)
        self._stop_listening = self.bot.runtime.engine.events.listen(self._on_pause, pauses)

    async def cog_unload(self) -> None:
        self._alerts.cancel()
        self._stop_listening()

    def _on_pause(self, event: JobEvent) -> None:
        """One alert when the engine pauses submissions on Wiro's code 97, none again until
        a Run has gone through."""
        if event.kind is EventKind.SUBMISSIONS_RESUMED:
            self.balance.resumed()
            return
        task = asyncio.create_task(self._alert_paused(event.detail or ""))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _alert_paused(self, reason: str) -> None:
        try:
            await self.balance.paused(reason)
        except Exception:  # the alert must not stop the next one
            log.exception("the balance alert could not be sent")

    @app_commands.command(name="usage", description="What the bot's jobs cost here")
    @app_commands.guild_only()
    @app_commands.describe(
        scope="Your own jobs, or the whole server's (Manage Server)",
        period="today, the last 7 days, this month (UTC), or all time",
    )
    async def usage(
        self,
        interaction: discord.Interaction[Any],
        scope: Literal["mine", "server"] = "mine",
        period: Literal["today", "week", "month", "all"] = "month",
    ) -> None:
        guild_id = interaction.guild_id
        if guild_id is None:  # guild_only; kept for the type checker
            return
        if scope == "server" and not interaction.permissions.manage_guild:
            await interaction.response.send_message(SERVER_ONLY, ephemeral=True)
            return
        # The chart takes a moment (matplotlib): answer within Discord's 3 seconds first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        now = time.time()
        runtime = self.bot.runtime
        usage = await runtime.store.spend.usage(
            guild_id=guild_id,
            since=period_start(period, now),
            user_id=interaction.user.id if scope == "mine" else None,
        )
        chart = await usage_chart(usage, runtime.catalog)
        whose = "Your spend on this server" if scope == "mine" else "This server's spend"
        embed = usage_embed(
            usage,
            title=f"{whose}: {period_words(period, now)}",
            catalog=runtime.catalog,
            by_member=scope == "server",
            chart=chart is not None,
        )
        await interaction.edit_original_response(
            embed=embed, attachments=[chart] if chart is not None else []
        )

    async def _look(self) -> None:
        """Tell each alerts channel of its server's budget thresholds newly reached."""
        channels = await self.bot.runtime.store.spend.alerts_channels()
        for guild_id in channels:
            try:
                await announce_crossings(self.bot, guild_id)
            except Exception:  # one server's failure must not stop the others' alerts
                log.exception("budget alert for server %s failed", guild_id)


async def setup(bot: WiroBot) -> None:
    await bot.add_cog(UsageCog(bot))
