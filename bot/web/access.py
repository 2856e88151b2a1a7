"""What a link's holder may see today, from the bot's own cache of the server.

A link stores the channels the member could see when they asked, and their roles then. When a
page opens, that set is narrowed to the channels that member, with those roles, can see now:
a channel's overwrites changed, a role's permissions taken away, a channel deleted, or the bot
removed from the server all take effect at once. What the bot cannot see without the members
intent (the member losing a role, or leaving) takes effect when the link expires.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord
from discord.utils import SnowflakeList

from bot.store.gallery import Grant


@dataclass(frozen=True, slots=True)
class _AsWhenAsked:
    """The member as `permissions_for` reads one: an id, role ids, never timed out."""

    id: int
    _roles: SnowflakeList

    def is_timed_out(self) -> bool:
        return False


def visible_now(client: discord.Client, grant: Grant) -> frozenset[int] | None:
    """The grant's channels still visible to its member (None: every channel, an admin)."""
    guild = client.get_guild(grant.guild_id)
    if guild is None:
        return frozenset()  # the bot left the server, or does not know it yet
    member = _AsWhenAsked(grant.user_id, SnowflakeList(sorted(grant.roles)))
    places: list[discord.abc.GuildChannel | discord.Thread] = [*guild.channels, *guild.threads]
    now = frozenset(
        place.id
        for place in places
        if place.permissions_for(member).view_channel  # type: ignore[arg-type]
    )
    if grant.channels is None:
        # An administrator when asked: still one if every channel is visible with those roles.
        return None if _is_admin(guild, member) else now
    return grant.channels & now


def _is_admin(guild: discord.Guild, member: _AsWhenAsked) -> bool:
    if guild.owner_id == member.id:
        return True
    permissions = guild.default_role.permissions.value
    for role_id in member._roles:
        role = guild.get_role(role_id)
        if role is not None:
            permissions |= role.permissions.value
    return discord.Permissions(permissions).administrator
