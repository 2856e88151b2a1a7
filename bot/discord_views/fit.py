"""Discord's length limits, and text shortened to fit them.

Whatever the bot echoes (a prompt, a model name someone pasted, a value it refuses) goes
through here on its way out: Discord rejects a message over a limit, and the member then sees
only "The application did not respond".
"""

from __future__ import annotations

import discord
from discord import app_commands

CONTENT = 2000
EMBED_TITLE = 256
EMBED_DESCRIPTION = 4096
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR = 256
#: All the text of one embed together.
EMBED_TOTAL = 6000
CHOICE_NAME = 100
CHOICE_VALUE = 100
MODAL_TITLE = 45
TEXT_INPUT = 4000

ELLIPSIS = "…"


def fit(text: str, limit: int) -> str:
    """`text` whole if it fits in `limit` characters, else cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """Every part of `embed` within its limit, and the whole within 6,000 characters (the
    description gives way first, then the fields from the last)."""
    if embed.title:
        embed.title = fit(embed.title, EMBED_TITLE)
    if embed.description:
        embed.description = fit(embed.description, EMBED_DESCRIPTION)
    for index, field in enumerate(embed.fields):
        embed.set_field_at(
            index,
            name=fit(field.name or "\u200b", FIELD_NAME),
            value=fit(field.value or "\u200b", FIELD_VALUE),
            inline=bool(field.inline),
        )
    if embed.footer.text:
        embed.set_footer(text=fit(embed.footer.text, FOOTER), icon_url=embed.footer.icon_url)
    if embed.author.name:
        embed.set_author(
            name=fit(embed.author.name, AUTHOR),
            url=embed.author.url,
            icon_url=embed.author.icon_url,
        )
    over = len(embed) - EMBED_TOTAL
    if over > 0 and embed.description:
        keep = max(len(embed.description) - over, 100)
        embed.description = fit(embed.description, keep)
        over = len(embed) - EMBED_TOTAL
    while over > 0 and embed.fields:
        embed.remove_field(len(embed.fields) - 1)
        over = len(embed) - EMBED_TOTAL
    return embed


def choice_name(text: str) -> str:
    return fit(text, CHOICE_NAME)


# -- free-text options, with the lengths Discord enforces before the bot sees them ---------------

#: A model's slug or name, an input's name, a choice's value.
ShortText = app_commands.Range[str, 1, 100]
#: A prompt or negative prompt (the models take up to 2,000 characters).
PromptText = app_commands.Range[str, 1, 2000]
