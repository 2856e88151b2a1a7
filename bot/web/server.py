"""Running the web application on the bot's own event loop."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.web.app import WebContext, build_app

log = logging.getLogger(__name__)


class WebServer:
    """Serves `build_app(context)` on host:port (port 0: any free port, for tests)."""

    def __init__(self, context: WebContext, *, host: str, port: int) -> None:
        self.context = context
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        runner = web.AppRunner(
            build_app(self.context), access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.context.monitor.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self._port
        log.info("web server listening on %s:%s", self._host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def stop(self) -> None:
        await self.context.monitor.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
