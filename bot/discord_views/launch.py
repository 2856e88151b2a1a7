"""Starting a job from an interaction: /imagine, Reroll and Remix all come through here.

Every refusal is decided before the first answer and before any Wiro call, and is told to the
person alone (ephemeral): the bot may not post in this channel, an input is invalid, a limit is
reached, or an NSFW-capable model outside an age-restricted channel.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

import discord

from bot.catalog.validation import InvalidInput
from bot.discord_views.fit import CONTENT, fit
from bot.jobs.engine import BudgetExceeded, JobRefused, JobRequest, LimitReached, Prepared
from bot.jobs.job import Job, Requester

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

log = logging.getLogger(__name__)

#: How long the checks before a job may take before the interaction is deferred (Discord
#: allows 3 seconds for the first answer).
ACK_BUDGET = 1.5

#: The longest prompt a member can type (the models take up to 2,000 characters).
PROMPT_LENGTH = 2000

#: What the bot needs in a channel to post results there, also after the interaction expires.
_NEEDED = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
    ("attach_files", "Attach Files"),
)


def requester_of(interaction: discord.Interaction[Any]) -> Requester:
    return Requester(
        user_id=interaction.user.id,
        guild_id=interaction.guild_id,
        channel_id=interaction.channel_id,
    )


def missing_permissions(interaction: discord.Interaction[Any]) -> list[str]:
    """The permissions the bot lacks in the interaction's channel, by their Discord names."""
    permissions = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    missing = []
    for flag, name in _NEEDED:
        if flag == "send_messages" and in_thread:
            flag, name = "send_messages_in_threads", "Send Messages in Threads"
        if not getattr(permissions, flag):
            missing.append(name)
    return missing


def age_restricted(channel: object) -> bool:
    """Whether a channel (or a thread's parent) is age-restricted."""
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


async def start_job(interaction: discord.Interaction[Any], request: JobRequest) -> None:
    """Check, submit and show a job; or tell the person why not. Answers the interaction.

    The checks and the submission are local (the interaction, the catalog, the database) and
    normally take milliseconds, so the first answer is the job's status message itself, or a
    refusal told privately: one answer, one request to Discord. Should they take longer than
    `ACK_BUDGET` (a busy database), the interaction is deferred first, and the status message
    (or a private refusal, as a follow-up) comes after, so Discord's 3 seconds are never
    missed.
    """
    bot = cast("WiroBot", interaction.client)
    # The work runs here, not in a task of its own: in a burst the checks mostly need no turn
    # on the database (its settings are recent), and a task and a wait per /imagine cost more
    # than the checks. A timer defers the interaction should the work take too long.
    deferring: list[asyncio.Task[Any]] = []
    late = asyncio.get_running_loop().call_later(
        ACK_BUDGET,
        lambda: deferring.append(asyncio.ensure_future(interaction.response.defer(thinking=True))),
    )
    try:
        job = await _checked_and_submitted(bot, interaction, request)
    finally:
        late.cancel()
        if deferring:
            await deferring[0]
    if isinstance(job, str):
        await _refuse(interaction, job)
        return
    target = bot.updater.follow(job, filesize_limit=interaction.filesize_limit)
    await bot.updater.show_first(target, interaction)


async def _checked_and_submitted(
    bot: WiroBot, interaction: discord.Interaction[Any], request: JobRequest
) -> Job | str:
    """The submitted job, or why not in words."""
    refusal, prepared = await _check(bot, interaction, request)
    if refusal is not None:
        return refusal
    assert prepared is not None
    try:
        return await bot.runtime.engine.submit(prepared)
    except (InvalidInput, JobRefused) as exc:
        return _refusal_words(exc)


async def _check(
    bot: WiroBot, interaction: discord.Interaction[Any], request: JobRequest
) -> tuple[str | None, Prepared | None]:
    """(why not, in words; None if the job may run) and the checked request to submit."""
    missing = missing_permissions(interaction)
    if missing:
        return (
            "I can't post images in this channel: I'm missing "
            f"{_and(missing)} here. Ask a server admin to grant "
            f"{'it' if len(missing) == 1 else 'them'}, or use another channel.",
            None,
        )
    try:
        prepared = await bot.runtime.engine.prepare(request)
    except (InvalidInput, JobRefused) as exc:
        return _refusal_words(exc), None
    model = bot.runtime.catalog.require(prepared.model)
    allowed_anywhere = prepared.guild is not None and prepared.guild.nsfw_anywhere
    if model.nsfw and not age_restricted(interaction.channel) and not allowed_anywhere:
        return (
            f"{model.display_name} can make adult images, so on this server it runs only in "
            "age-restricted channels. Use an age-restricted channel, or ask a server admin "
            "to allow it elsewhere.",
            None,
        )
    return None, prepared


def _refusal_words(exc: InvalidInput | JobRefused) -> str:
    if isinstance(exc, InvalidInput):
        return exc.message
    if isinstance(exc, BudgetExceeded):
        return f"{exc} The budget renews <t:{int(exc.retry_at)}:R>."
    if isinstance(exc, LimitReached):
        return f"{exc} You can try again <t:{int(exc.retry_at)}:R>."
    return str(exc)


async def _refuse(interaction: discord.Interaction[Any], text: str) -> None:
    """Tell only the person. After a (public) deferral: a private follow-up, and the
    'thinking…' placeholder is removed."""
    text = fit(text, CONTENT)
    if not interaction.response.is_done():
        await interaction.response.send_message(text, ephemeral=True)
        return
    await interaction.followup.send(text, ephemeral=True)
    try:
        await interaction.delete_original_response()
    except discord.HTTPException:
        log.debug("could not remove the deferred answer", exc_info=True)


def _and(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]
