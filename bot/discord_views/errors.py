"""The last word when a command, a button or a form fails: a private message in plain words
for the member, one log line (with its traceback) for the operator, never silence."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot.discord_views.fit import CONTENT, fit

log = logging.getLogger(__name__)

SORRY = (
    "Something went wrong on the bot's side, so that did not work. Nothing was charged for it. "
    "Try again in a moment; if it keeps happening, tell the server's admins."
)


def words_for(error: Exception) -> str | None:
    """What to tell the member about an expected refusal; None for a fault of the bot."""
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This command works only in a server, not in direct messages."
    if isinstance(error, app_commands.MissingPermissions):
        return f"You need {_names(error.missing_permissions)} on this server to do that."
    if isinstance(error, app_commands.BotMissingPermissions):
        return f"I need {_names(error.missing_permissions)} here to do that."
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Not so fast: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.TransformerError):
        return f"That value is not one this option takes ({fit(str(error.value), 100)})."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use this command here."
    return None


async def report_failure(
    interaction: discord.Interaction[Any], error: Exception, what: str
) -> None:
    """Tell the member (privately) and log once. `what`: "/imagine", "the Remix button"."""
    original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
    words = words_for(original)
    if words is None:
        log.error(
            "%s failed for user %s in guild %s: %s",
            what,
            interaction.user.id,
            interaction.guild_id,
            _plain(original),
            exc_info=original,
        )
        words = SORRY
    await tell(interaction, words)


async def tell(interaction: discord.Interaction[Any], text: str) -> None:
    """A private message to whoever acted, whether or not the interaction was answered yet."""
    text = fit(text, CONTENT)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:  # expired, or Discord is down: the log has it
        log.warning("could not tell user %s: %s", interaction.user.id, _plain(exc))


_Self = TypeVar("_Self")
_Callback = Callable[[_Self, discord.Interaction[Any]], Coroutine[Any, Any, None]]


def reports_failures(what: str) -> Callable[[_Callback[_Self]], _Callback[_Self]]:
    """For a component's `callback`: discord.py only logs what a dynamic item raises, so the
    member would see "This interaction failed"; this tells them, and logs once."""

    def decorate(callback: _Callback[_Self]) -> _Callback[_Self]:
        @functools.wraps(callback)
        async def run(self: _Self, interaction: discord.Interaction[Any]) -> None:
            try:
                await callback(self, interaction)
            except Exception as exc:
                await report_failure(interaction, exc, what)

        return run

    return decorate


def _plain(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _names(permissions: list[str]) -> str:
    return " and ".join(p.replace("_", " ").replace("guild", "server").title() for p in permissions)
