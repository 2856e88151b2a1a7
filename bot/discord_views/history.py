"""/history in Discord: pages of past jobs with Previous/Next, and one job in full.

A page's query travels in its buttons' custom_ids (`wirobot:history:<user>:<scope><way>:
<page>:<cursor>:<model>:<search>`), so paging works after a restart and nothing is read back
from the embed. Paging is by keyset: a button carries the job id its page starts after
(`n`: older than it, `p`: newer than it), so a page costs the same at page 1 and page 5,000,
and jobs made meanwhile do not shift the pages. The user and cursor are in base 36 to fit
Discord's 100 characters.
Who may see what:

- `mine`: your own jobs on this server.
- `server`: every job on this server started in a channel you can see now (View Channel), so
  the list shows nothing that was not already in front of you. Jobs in channels the bot no
  longer knows (deleted, or archived threads) show to members with Administrator only.
- one job (`job:<id>`): yours, or one started in a channel you can see.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import ui

from bot.catalog.catalog import Catalog
from bot.catalog.spec import InputKind, InputSpec, ModelSpec
from bot.discord_views import images
from bot.discord_views.catalog import shown_value
from bot.discord_views.errors import reports_failures
from bot.discord_views.fit import fit_embed
from bot.discord_views.launch import age_restricted
from bot.discord_views.render import failure_words, model_name, seconds, state_words
from bot.jobs.job import Job, JobState
from bot.money import usd
from bot.store import HistoryQuery

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

PAGE_SIZE = 10
#: Longest search that still fits a custom_id (100 characters) with everything else.
MAX_SEARCH = 40
_MAX_PAGE = 9999
#: Counting stops here (the footer then says "1000+ jobs"): no page pays for counting a
#: whole large server. A search or model filter reads each job it counts, so it stops sooner.
COUNT_CAP = 1000
FILTERED_COUNT_CAP = 200
#: How a job whose images retention removed is marked.
EXPIRED = "images expired"
_PROMPT_IN_LIST = 100
_COLOUR = discord.Colour.blurple()
_Button = ui.Button[ui.View]


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """One page of /history as asked: who asked, and the filters."""

    user_id: int
    server: bool = False  # scope: the whole server, not only the asker's jobs
    model: str | None = None  # a catalog slug
    search: str | None = None
    page: int = 0
    #: The keyset: the page holds jobs older (or, with `newer`, newer) than this job.
    cursor: int | None = None
    newer: bool = False

    def custom_id(self) -> str:
        scope = ("s" if self.server else "m") + ("p" if self.newer else "n")
        model = _model_key(self.model) if self.model else ""
        cursor = _base36(self.cursor) if self.cursor is not None else ""
        return (
            f"wirobot:history:{_base36(self.user_id)}:{scope}:{self.page}:{cursor}:{model}:"
            f"{self.search or ''}"
        )


# -- the list -----------------------------------------------------------------------------------


async def history_page(
    interaction: discord.Interaction[Any], request: HistoryRequest
) -> tuple[discord.Embed, ui.View | None]:
    """The embed and buttons for one page; a cursor that leads nowhere (the first page, or
    jobs gone) shows the first page."""
    bot = _bot(interaction)
    catalog = bot.runtime.catalog
    jobs = bot.runtime.store.jobs
    query = HistoryQuery(
        guild_id=interaction.guild_id,
        user_id=None if request.server else request.user_id,
        model=request.model,
        search=request.search,
        limit=PAGE_SIZE + 1,  # one more: is there a next page?
        channel_ids=visible_channels(interaction) if request.server else None,
    )
    found: list[Job] = []
    page, more = 0, False
    if request.page > 0 and request.cursor is not None:
        if request.newer:
            found = await jobs.history(replace(query, after_id=request.cursor))
            more = True  # the page it came from is older
            if len(found) <= PAGE_SIZE:
                found = []  # it reaches the newest jobs: that is the first page
            found = found[-PAGE_SIZE:]
        else:
            found = await jobs.history(replace(query, before_id=request.cursor))
            more = len(found) > PAGE_SIZE
            found = found[:PAGE_SIZE]
        page = min(request.page, _MAX_PAGE)
    if not found:
        found = await jobs.history(query)
        page, more = 0, len(found) > PAGE_SIZE
        found = found[:PAGE_SIZE]
    cap = FILTERED_COUNT_CAP if request.search or request.model else COUNT_CAP
    total = await jobs.count_history(query, cap=cap)

    title = "Images on this server" if request.server else "Your images on this server"
    embed = discord.Embed(title=title, colour=_COLOUR)
    lines = _filter_words(request, catalog)
    if not found:
        lines.append("No jobs match." if request.model or request.search else "No jobs yet.")
    for job in found:
        lines.append(_entry(job, catalog.get(job.model), interaction.guild_id))
    embed.description = "\n\n".join(lines)[:4096]
    embed.set_footer(text=f"{page_counts(page, total, cap)} · /history job:<number> shows one")
    return fit_embed(embed), _pager(request, page, found, more=more)


def page_counts(page: int, total: int, cap: int = COUNT_CAP) -> str:
    if total >= cap:
        return f"Page {page + 1} · {cap}+ jobs"
    pages = max(1, math.ceil(total / PAGE_SIZE), page + 1)
    noun = "job" if total == 1 else "jobs"
    return f"Page {page + 1} of {pages} · {total} {noun}"


def request_from_custom_id(match: re.Match[str], catalog: Catalog) -> HistoryRequest:
    key = match["model"]
    model = next((m.slug for m in catalog.all() if _model_key(m.slug) == key), None)
    return HistoryRequest(
        user_id=int(match["user"], 36),
        server=match["scope"] == "s",
        model=model if key else None,
        search=match["search"] or None,
        page=int(match["page"]),
        cursor=int(match["cursor"], 36) if match["cursor"] else None,
        newer=match["way"] == "p",
    )


class HistoryPageButton(
    ui.DynamicItem[_Button],
    template=r"wirobot:history:(?P<user>[0-9a-z]+):(?P<scope>[ms])(?P<way>[np]):(?P<page>\d{1,4})"
    r":(?P<cursor>[0-9a-z]{0,12}):(?P<model>[0-9a-f]*):(?P<search>.*)",
):
    """Previous or Next on a /history page: only the person who asked may page."""

    def __init__(self, request: HistoryRequest, label: str, *, disabled: bool = False) -> None:
        super().__init__(
            ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=request.custom_id(),
                disabled=disabled,
            )
        )
        self.request = request

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> HistoryPageButton:
        request = request_from_custom_id(match, _bot(interaction).runtime.catalog)
        button = cast(_Button, item)
        return cls(request, button.label or "", disabled=button.disabled)

    @reports_failures("the history page button")
    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        request = self.request
        if interaction.user.id != request.user_id:
            await interaction.response.send_message(
                "Only the person who asked can page through this list; use /history yourself.",
                ephemeral=True,
            )
            return
        embed, view = await history_page(interaction, request)
        await interaction.response.edit_message(embed=embed, view=view)


def _pager(request: HistoryRequest, page: int, shown: list[Job], *, more: bool) -> ui.View | None:
    """Previous and Next, each carrying the job its page starts after (a disabled one: no
    cursor, and the two custom_ids still differ by their direction)."""
    first, last = page == 0, not more
    if first and last:
        return None
    view = ui.View(timeout=None)
    base = replace(request, cursor=None)
    previous = replace(base, newer=True, page=page)
    following = replace(base, newer=False, page=page)
    if not first:
        previous = replace(previous, page=page - 1, cursor=shown[0].id)
    if not last:
        following = replace(following, page=min(page + 1, _MAX_PAGE), cursor=shown[-1].id)
    view.add_item(HistoryPageButton(previous, "Previous", disabled=first))
    view.add_item(HistoryPageButton(following, "Next", disabled=last))
    return view


def _entry(job: Job, model: ModelSpec | None, guild_id: int | None) -> str:
    name = model.display_name if model else job.model
    parts = [f"**Job {job.id}**", f"<t:{int(job.created_at)}:R>"]
    if job.user_id is not None:
        parts.append(f"<@{job.user_id}>")
    parts += [discord.utils.escape_markdown(name), state_words(job)]
    if job.outputs_expired_at is not None:
        parts.append(EXPIRED)
    if job.cost:
        parts.append(usd(job.cost))
    url = jump_url(job, guild_id)
    if url:
        parts.append(f"[result]({url})")
    return " · ".join(parts) + "\n" + _quote(job.prompt, _PROMPT_IN_LIST)


def _filter_words(request: HistoryRequest, catalog: Catalog) -> list[str]:
    words = []
    if request.model:
        model = catalog.get(request.model)
        words.append(f"Model: {model.display_name if model else request.model}")
    if request.search:
        words.append(f"Prompt contains: “{discord.utils.escape_markdown(request.search)}”")
    return [" · ".join(words)] if words else []


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if number == 0:
            return text


def _model_key(slug: str) -> str:
    """A short, stable stand-in for a slug in a custom_id (slugs may be long)."""
    return f"{zlib.crc32(slug.casefold().encode()):08x}"


# -- one job ------------------------------------------------------------------------------------


async def show_job(interaction: discord.Interaction[Any], job_id: int) -> None:
    """Answer with one job in full: every input, its state, and its images."""
    bot = _bot(interaction)
    job = await bot.runtime.engine.get(job_id)
    if job is None or not may_see(interaction, job):
        await interaction.response.send_message(
            f"There is no job {job_id} on this server that you can see.", ephemeral=True
        )
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    model = bot.runtime.catalog.get(job.model)
    embed = job_embed(job, model, interaction.guild_id)
    files: list[discord.File] = []
    if job.outputs_expired_at is not None:
        # Retention removed the files; Wiro's links are long dead: say so, show nothing.
        embed.add_field(
            name="Images",
            value=f"{EXPIRED.capitalize()} <t:{int(job.outputs_expired_at)}:R> (the bot keeps"
            " images for a limited time); the posted message may still show them.",
            inline=False,
        )
    elif job.status is JobState.SUCCEEDED and job.outputs:
        spoiler = bool(model and model.nsfw) and not age_restricted(interaction.channel)
        upload = await images.fit(job.outputs, interaction.filesize_limit, spoiler=spoiler)
        files = upload.files
        if upload.links:
            lines = [f"[Image {i}]({url})" for i, url in enumerate(upload.links, 1)]
            embed.add_field(
                name="Images (not attached; Wiro's links expire)",
                value="\n".join(lines)[:1024],
                inline=False,
            )
    await interaction.followup.send(embed=embed, files=files, ephemeral=True)


def job_embed(job: Job, model: ModelSpec | None, guild_id: int | None) -> discord.Embed:
    colour = discord.Colour.green() if job.status is JobState.SUCCEEDED else _COLOUR
    if job.status.is_final and job.status is not JobState.SUCCEEDED:
        colour = discord.Colour.red()
    embed = discord.Embed(title=f"Job {job.id} · {state_words(job)}", colour=colour)
    lines = [_quote(job.prompt, 2000), "", "**Inputs**"]
    for option, value in job.inputs.items():
        if option == "prompt":
            continue
        spec = model.input(option) if model else None
        lines.append(f"`{option}` {discord.utils.escape_markdown(_full(spec, value))}")
    embed.description = "\n".join(lines)[:4096]
    embed.add_field(name="Model", value=model_name(job, model), inline=True)
    if job.user_id is not None:
        embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="When", value=f"<t:{int(job.created_at)}:f>", inline=True)
    embed.add_field(name="Seed", value=str(job.seed), inline=True)
    if job.elapsed_seconds is not None:
        embed.add_field(name="Time", value=seconds(job.elapsed_seconds), inline=True)
    if job.cost is not None:
        embed.add_field(name="Cost", value=usd(job.cost), inline=True)
    if job.status.is_final and job.status is not JobState.SUCCEEDED:
        embed.add_field(name="Why", value=failure_words(job)[:1024], inline=False)
    url = jump_url(job, guild_id)
    if url:
        embed.add_field(name="Posted", value=f"[Go to the message]({url})", inline=False)
    return fit_embed(embed)


def may_see(interaction: discord.Interaction[Any], job: Job) -> bool:
    """Whether the person may see this job: one of this server's, theirs or in a channel
    they can see."""
    if job.guild_id is None or job.guild_id != interaction.guild_id:
        return False
    if job.user_id == interaction.user.id:
        return True
    visible = visible_channels(interaction)
    return visible is None or job.channel_id in visible


def visible_channels(interaction: discord.Interaction[Any]) -> frozenset[int] | None:
    """The channels (and active threads) of the server the person can see; None: all."""
    guild = interaction.guild
    member = interaction.user
    if guild is None or not isinstance(member, discord.Member):
        return frozenset()
    if interaction.permissions.administrator:
        return None
    places: list[discord.abc.GuildChannel | discord.Thread] = [*guild.channels, *guild.threads]
    return frozenset(c.id for c in places if c.permissions_for(member).view_channel)


def jump_url(job: Job, guild_id: int | None) -> str | None:
    message_id = job.result_message_id or job.status_message_id
    if guild_id is None or job.channel_id is None or message_id is None:
        return None
    return f"https://discord.com/channels/{guild_id}/{job.channel_id}/{message_id}"


def _full(spec: InputSpec | None, value: object) -> str:
    """An input's value for the job's page: text in full (within reason), the rest as
    people read it."""
    if isinstance(value, str) and (spec is None or spec.kind is InputKind.TEXT):
        text = value
    else:
        text = shown_value(spec, value)
    return text if len(text) <= 500 else text[:499] + "…"


def _quote(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return "> " + (discord.utils.escape_markdown(flat) or "(no prompt)")


def _bot(interaction: discord.Interaction[Any]) -> WiroBot:
    return cast("WiroBot", interaction.client)
