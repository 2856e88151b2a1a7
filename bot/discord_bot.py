"""The Discord bot: owns the runtime (HTTP session, database, engine), loads the cogs, syncs
the commands, keeps job messages up to date and re-attaches to jobs after a restart."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import signal
from contextlib import AsyncExitStack

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from bot.discord_views.buttons import all_buttons, remix_submitted
from bot.discord_views.errors import report_failure
from bot.discord_views.updater import StatusUpdater
from bot.event_loop import settle_heap
from bot.runtime import Runtime, check_storage, open_runtime
from bot.settings import Settings
from bot.web.access import visible_now
from bot.web.app import WebContext
from bot.web.server import WebServer

log = logging.getLogger(__name__)

# The bot never joins voice: discord.py's warnings about missing voice libraries are noise.
discord.VoiceClient.warn_nacl = False
discord.VoiceClient.warn_dave = False

#: Extensions loaded at start, one cog a module.
EXTENSIONS = (
    "cogs.imagine",
    "cogs.history",
    "cogs.models",
    "cogs.settings",
    "cogs.usage",
    "cogs.gallery",
)


class WiroBot(commands.AutoShardedBot):
    """The bot. Give it `runtime` to share one already opened (tests do); otherwise it opens
    its own in `setup_hook` and closes it in `close()`.

    Auto-sharded: with discord.shard_count and discord.shard_ids unset, it runs every shard
    Discord recommends; set, this process runs those shards of that many (several processes
    then share one PostgreSQL database)."""

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: Runtime | None = None,
        extensions: tuple[str, ...] = EXTENSIONS,
    ) -> None:
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=discord.Intents(guilds=True),
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            shard_count=settings.discord.shard_count,
            # None (discord.py's default) runs them all; its stubs ask for a list.
            shard_ids=settings.discord.shard_ids or None,  # type: ignore[arg-type]
        )
        self.settings = settings
        self.extensions_to_load = extensions
        self._runtime = runtime
        self._owned = AsyncExitStack()
        self.updater = StatusUpdater(self, settings.discord.status_edit_interval)
        self.tree.error(self._command_failed)
        #: The web server (health, metrics, gallery); None when web.port is 0.
        self.web: WebServer | None = None

    async def login(self, token: str) -> None:
        # discord.py keeps its REST base in one class attribute: set before the first call.
        discord.http.Route.BASE = self.settings.discord.api_base_url
        await super().login(token)

    async def launch_shards(self) -> None:
        """The gateway is where /gateway/bot says (a REST proxy answers with the gateway it
        fronts). discord.py asks only when it picks the shard count, and dials its built-in
        default with a count given and on every fresh (not resumed) reconnect."""
        if not self.is_closed():
            _, url, _ = await self.http.get_bot_gateway()
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
        await super().launch_shards()

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("the bot's runtime is not open yet (setup_hook has not run)")
        return self._runtime

    async def setup_hook(self) -> None:
        if self._runtime is None:
            self._runtime = await self._owned.enter_async_context(open_runtime(self.settings))
        self.runtime.metrics.set_gateway_latency(lambda: self.latency)
        for item in all_buttons():
            self.add_dynamic_items(item)
        self.add_listener(remix_submitted, "on_interaction")
        for extension in self.extensions_to_load:
            await self.load_extension(extension)
        if self.settings.web.port:
            await self.start_web(self.settings.web.port)
        await self.sync_commands()
        await self.updater.resume()

    async def _command_failed(
        self, interaction: discord.Interaction[discord.Client], error: app_commands.AppCommandError
    ) -> None:
        """Any error in a slash command: a private message in words and one log line."""
        command = interaction.command
        name = f"/{command.qualified_name}" if command is not None else "a command"
        await report_failure(interaction, error, name)

    async def web_context(self) -> WebContext:
        runtime = self.runtime
        imagine = self.tree.get_command("imagine")
        options = getattr(imagine, "parameters", [])
        return WebContext(
            store=runtime.store,
            catalog=runtime.catalog,
            metrics=runtime.metrics,
            outputs_dir=self.settings.database.outputs_path,
            signing_key=await runtime.store.gallery.signing_key(),
            public_url=self.settings.web.public_url or "",
            discord_connected=self.discord_connected,
            guild_name=lambda guild_id: getattr(self.get_guild(guild_id), "name", None),
            visible_now=lambda grant: visible_now(self, grant),
            imagine_options=frozenset(p.name for p in options),
        )

    async def start_web(self, port: int) -> None:
        """Serve health, metrics and the gallery on web.host:`port` (0: any free port)."""
        server = WebServer(await self.web_context(), host=self.settings.web.host, port=port)
        await server.start()
        self._owned.push_async_callback(server.stop)
        self.web = server

    def discord_connected(self) -> bool:
        """Ready, and every shard this process runs has its gateway socket open."""
        if not self.is_ready() or self.is_closed():
            return False
        shards = self.shards.values()  # auto-sharded: the sockets are the shards'
        if shards:
            return all(not shard.is_closed() for shard in shards)
        ws = self.ws
        return ws is not None and bool(ws.open)

    async def sync_commands(self) -> None:
        """To the configured guilds at once when set (global sync can take an hour)."""
        guild_ids = self.settings.discord.guild_ids
        if not guild_ids:
            synced = await self.tree.sync()
            log.info("synced %d command(s) globally", len(synced))
            return
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d command(s) to guild %s", len(synced), guild_id)

    async def close(self) -> None:
        """Stop taking jobs; running ones stay in the database and resume at the next start."""
        await self.updater.stop()
        await self._owned.aclose()
        await super().close()


#: What the bot needs where it posts (see launch.missing_permissions) and nothing more.
PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
)
SCOPES = ("bot", "applications.commands")


def invite_url(application_id: int) -> str:
    """The link a server admin opens to add the bot, with its scopes and permissions."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)


def application_id_from_token(token: str) -> int | None:
    """The bot's id, which a bot token starts with (base64); None if it does not look like
    one. For every bot application the bot's user id is the application's id."""
    first = token.strip().split(".")[0]
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), validate=True).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    return int(decoded) if decoded.isdigit() and 15 <= len(decoded) <= 21 else None


def _plain(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def run_bot(settings: Settings) -> int:
    """Run until SIGTERM or SIGINT, then shut down cleanly. Returns the exit status.

    Settings and files are checked before logging in to Discord (ConfigError otherwise)."""
    token = settings.require_discord_token().get_secret_value()
    settings.require_wiro_key()
    check_storage(settings)
    settle_heap()
    return asyncio.run(_run(settings, token))


async def _run(settings: Settings, token: str, bot_class: type[WiroBot] = WiroBot) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(signum, stop.set)
    try:
        return await _serve(settings, token, bot_class, stop)
    finally:
        for signum in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(signum)


async def _serve(
    settings: Settings, token: str, bot_class: type[WiroBot], stop: asyncio.Event
) -> int:
    async with bot_class(settings) as bot:
        running = asyncio.create_task(bot.start(token), name="wirobot-discord")
        stopping = asyncio.create_task(stop.wait(), name="wirobot-signal")
        done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running in done:
            stopping.cancel()
            try:
                running.result()
            except discord.LoginFailure:
                log.error("Discord refused the bot token (discord.token)")
                return 1
            except (aiohttp.ClientError, OSError, discord.DiscordException) as exc:
                # discord.py retries dropped connections itself; this is failing to start.
                log.error("could not connect to Discord: %s", _plain(exc))
                return 1
            return 0
        log.info("signal received: shutting down")
        await bot.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    return 0
