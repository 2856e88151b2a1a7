"""/gallery: a private, signed, expiring link to this server's images on the bot's web server.

The link stores what the member could see when they asked: the channels they could view
(administrators: all), the age-restricted ones among them, Manage Server, and their roles.
Each page narrows that to what those roles see today (bot/web/access.py), so a channel closed
to them closes at once; a role taken away (the bot has no members intent to know it) takes
effect when the link expires, LINK_LIFETIME after it was made.

Also here: every interaction's member name is kept (the gallery shows names, not ids) and
counted for the metrics.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord_views.history import visible_channels
from bot.discord_views.launch import age_restricted
from bot.web.signing import LinkClaims, link_url

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

log = logging.getLogger(__name__)

#: How long a /gallery link opens the gallery.
LINK_LIFETIME = 24 * 3600.0


class Gallery(commands.Cog):
    def __init__(self, bot: WiroBot) -> None:
        self.bot = bot
        #: Names already stored, so a burst of interactions is not a burst of writes.
        self._names: dict[tuple[int, int], str] = {}

    @app_commands.command(name="gallery", description="A private link to this server's images")
    @app_commands.guild_only()
    async def gallery(self, interaction: discord.Interaction[Any]) -> None:
        web = self.bot.web
        guild = interaction.guild
        if web is None or guild is None or not isinstance(interaction.user, discord.Member):
            await interaction.response.send_message(
                "The gallery is not running on this bot (its web server is off).", ephemeral=True
            )
            return
        channels = visible_channels(interaction)
        places = [*guild.channels, *guild.threads]
        nsfw = frozenset(
            place.id
            for place in places
            if age_restricted(place) and (channels is None or place.id in channels)
        )
        grant = await self.bot.runtime.store.gallery.create_grant(
            guild_id=guild.id,
            user_id=interaction.user.id,
            channels=channels,
            nsfw_channels=nsfw,
            from_nsfw=age_restricted(interaction.channel),
            admin=interaction.permissions.manage_guild,
            roles=frozenset(role.id for role in interaction.user.roles),
            lifetime=LINK_LIFETIME,
        )
        claims = LinkClaims(grant.id, grant.guild_id, grant.user_id, int(grant.expires_at))
        url = link_url(self.bot.settings.web.public_url or web.url, web.context.signing_key, claims)
        view = discord.ui.View()
        view.add_item(discord.ui.Button(label="Open the gallery", url=url))
        await interaction.response.send_message(
            f"Your link to the images of **{discord.utils.escape_markdown(guild.name)}**, "
            f"for you alone, valid for {LINK_LIFETIME / 3600:g} hours. It shows the channels "
            f"you can see now:\n{url}",
            view=view,
            ephemeral=True,
        )

    @commands.Cog.listener()
    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        self.bot.runtime.metrics.interaction(_kind(interaction))
        user = interaction.user
        if interaction.guild_id is None or not isinstance(user, discord.Member):
            return
        key, name = (interaction.guild_id, user.id), user.display_name
        if self._names.get(key) == name:
            return
        if len(self._names) > 50_000:
            self._names.clear()
        self._names[key] = name
        try:
            await self.bot.runtime.store.gallery.remember_name(*key, name)
        except Exception:  # a name is a nicety: never let it break an interaction
            log.warning("could not store the name of member %s", user.id, exc_info=True)


def _kind(interaction: discord.Interaction[Any]) -> str:
    if interaction.type is discord.InteractionType.application_command:
        command = interaction.command
        return f"/{command.qualified_name}" if command is not None else "command"
    return str(interaction.type.name)


async def setup(bot: WiroBot) -> None:
    await bot.add_cog(Gallery(bot))
