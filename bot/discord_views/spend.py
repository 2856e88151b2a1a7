"""Money in Discord: budget alerts, the Wiro balance alert, and /usage's embed and chart."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

import discord

from bot.catalog.catalog import Catalog
from bot.jobs.budget import Crossing
from bot.money import ZERO, usd
from bot.store.spend import Usage, UsageRow

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

log = logging.getLogger(__name__)

COLOUR = discord.Colour.gold()
_LIST = 10  # lines per "by ..." field


# -- alerts -----------------------------------------------------------------------------------


def crossing_words(crossing: Crossing) -> str:
    period = crossing.period
    text = (
        f"This server has spent {usd(crossing.spent)} of its {usd(crossing.budget)} budget "
        f"for {period.name} ({crossing.threshold} %)."
    )
    if crossing.threshold >= 100:
        text += (
            f" New jobs are refused until the budget renews <t:{int(period.end.timestamp())}:R>,"
            " or an admin raises it with `/settings budget`."
        )
    return text


async def announce_crossings(bot: WiroBot, guild_id: int, *, now: float | None = None) -> int:
    """Tell the server's alerts channel of the monthly budget thresholds newly reached (one
    message per threshold per month). Returns the messages sent."""
    crossings = await bot.runtime.engine.budgets.crossings(
        guild_id, now=time.time() if now is None else now
    )
    for crossing in crossings:
        await _post(bot, crossing.channel_id, crossing_words(crossing))
    return len(crossings)


class BalanceAlert:
    """Wiro said the project's balance is too low (code 97): one alert to every alerts channel
    when submissions pause, none again until they have resumed.

    The engine pauses submissions and tells the people waiting; the Discord layer calls
    `paused` when a pause starts and `resumed` when a Run succeeds again."""

    def __init__(self, bot: WiroBot) -> None:
        self.bot = bot
        self._paused = False

    @property
    def is_paused(self) -> bool:
        return self._paused

    async def paused(self, reason: str = "") -> int:
        """Send the alert once per pause; returns the channels told."""
        if self._paused:
            return 0
        self._paused = True
        text = (
            "**Wiro's balance is too low**: Wiro refused a job for lack of funds"
            + (f" ({reason})" if reason else "")
            + ". New jobs wait instead of failing and nothing is charged for them. Top up the "
            "Wiro project's balance (wiro.ai → your project → billing); the waiting jobs then "
            "start by themselves."
        )
        channels = await self.bot.runtime.store.spend.alerts_channels()
        for channel_id in channels.values():
            await _post(self.bot, channel_id, text)
        return len(channels)

    def resumed(self) -> None:
        self._paused = False


async def _post(bot: WiroBot, channel_id: int, text: str) -> None:
    try:
        await bot.get_partial_messageable(channel_id).send(
            text, allowed_mentions=discord.AllowedMentions.none()
        )
    except discord.HTTPException as exc:
        log.warning("alert not posted in channel %s: %s", channel_id, exc)


# -- /usage -------------------------------------------------------------------------------------


def usage_embed(
    usage: Usage, *, title: str, catalog: Catalog, by_member: bool, chart: bool
) -> discord.Embed:
    embed = discord.Embed(title=title, colour=COLOUR)
    if not usage.days:
        embed.description = "No jobs in this period."
        return embed
    embed.description = f"**{usd(usage.total)}** for {_jobs(usage.jobs)}."
    if by_member:
        lines = [
            (f"<@{k}>" if k is not None else "command line") + f": {usd(m)} · {_jobs(n)}"
            for k, m, n in usage.by_member()
        ]
        embed.add_field(name="By member", value=_lines(lines), inline=False)
    lines = [f"{_model(catalog, k)}: {usd(m)} · {_jobs(n)}" for k, m, n in usage.by_model()]
    embed.add_field(name="By model", value=_lines(lines), inline=False)
    days = usage.by_day()
    lines = [f"{k}: {usd(m)} · {_jobs(n)}" for k, m, n in days[-_LIST:]]
    embed.add_field(name="By day (UTC)", value=_lines(lines), inline=False)
    if chart:
        embed.set_image(url="attachment://usage.png")
    return embed


def _model(catalog: Catalog, slug: str) -> str:
    model = catalog.get(slug)
    return model.display_name if model else slug


def _jobs(n: int) -> str:
    return f"{n} job" + ("" if n == 1 else "s")


def _lines(lines: list[str]) -> str:
    shown = lines[:_LIST]
    if len(lines) > _LIST:
        shown.append(f"… and {len(lines) - _LIST} more")
    return "\n".join(shown)[:1024]


async def usage_chart(usage: Usage, catalog: Catalog) -> discord.File | None:
    """Spend per day, stacked by model, as a PNG (drawn in a thread: matplotlib blocks)."""
    if not usage.days or usage.total == 0:
        return None
    png = await asyncio.to_thread(draw_chart, usage.days, catalog)
    return discord.File(io.BytesIO(png), filename="usage.png")


def draw_chart(rows: Iterable[UsageRow], catalog: Catalog) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = list(rows)
    days = sorted({r.day for r in rows})
    models = sorted({r.model for r in rows})
    spend: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    for r in rows:
        spend[(r.model, r.day)] += r.cost
    figure = Figure(figsize=(8, 4), dpi=100)
    axes = figure.subplots()
    bottom = [0.0] * len(days)
    for model in models:
        # Floats only to draw: the sums above are exact.
        heights = [float(spend[(model, day)]) for day in days]
        axes.bar(days, heights, bottom=bottom, label=_model(catalog, model))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_ylabel("USD")
    axes.set_title("Spend per day (UTC), by model")
    axes.legend(fontsize="small")
    axes.tick_params(axis="x", labelrotation=45, labelsize="small")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
