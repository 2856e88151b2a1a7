"""A Discord stand-in (REST v10 + Gateway v10 on loopback) for real bot processes."""

from tests.discord_standin.server import (
    Channel,
    DiscordStandIn,
    Guild,
    Interaction,
    Message,
    Operation,
    User,
)

__all__ = ["Channel", "DiscordStandIn", "Guild", "Interaction", "Message", "Operation", "User"]
