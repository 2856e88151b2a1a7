"""The web server's application: /healthz, /metrics and the gallery behind signed links.

Everything is served by the bot itself (no outside CDN), under a strict Content-Security-Policy.
Who may see what is decided by the link's grant (bot/store/gallery.py): the server, and the
channels the member could see when they asked for the link.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web

from bot.catalog.catalog import Catalog
from bot.jobs.job import Job, Output
from bot.metrics import CONTENT_TYPE, Metrics
from bot.store import Store
from bot.store.gallery import GalleryQuery, Grant
from bot.web import health
from bot.web.images import Images
from bot.web.pages import BadQuery, parse_filters
from bot.web.signing import BadLink, verify

log = logging.getLogger(__name__)

PAGE_SIZE = 24
CSP = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_TOKEN = r"{token:[A-Za-z0-9_-]{1,64}\.[A-Za-z0-9_-]{1,32}}"
_JOB = "{job_id:[0-9]{1,18}}"
_POSITION = "{position:[0-9]{1,2}}"
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
_FILTER_PARAMS = frozenset({"model", "member", "q", "before", "partial"})
_ASK_AGAIN = "Ask for a new one with /gallery in Discord."
IMAGE_CACHE = "private, max-age=31536000, immutable"


class _Answer(Exception):
    """Stop handling a request and answer with this page (a bad link, say)."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass(slots=True)
class WebContext:
    """What the pages need from the bot, given by the bot (tests give their own)."""

    store: Store
    catalog: Catalog
    metrics: Metrics
    outputs_dir: Path
    signing_key: bytes
    public_url: str
    discord_connected: Callable[[], bool]
    guild_name: Callable[[int], str | None] = lambda _guild_id: None
    #: The channels a grant's holder may see now (None: all); see bot/web/access.py.
    visible_now: Callable[[Grant], frozenset[int] | None] = lambda grant: grant.channels
    #: The /imagine options a job's inputs may be given back as.
    imagine_options: frozenset[str] = frozenset()
    clock: Callable[[], float] = time.time
    monitor: health.LoopMonitor = field(default_factory=health.LoopMonitor)


def build_app(context: WebContext) -> web.Application:
    pages = _Pages(context)
    app = web.Application(middlewares=[_headers_for(pages)], client_max_size=1024)
    app.router.add_get("/healthz", pages.healthz)
    app.router.add_get("/metrics", pages.metrics)
    app.router.add_get("/static/{name:[a-z0-9_-]{1,40}\\.[a-z]{2,4}}", pages.static)
    app.router.add_get(f"/g/{_TOKEN}/", pages.gallery)
    app.router.add_get(f"/g/{_TOKEN}/mine", pages.mine)
    app.router.add_get(f"/g/{_TOKEN}/spend", pages.spend)
    app.router.add_get(f"/g/{_TOKEN}/job/{_JOB}", pages.job)
    app.router.add_get(f"/g/{_TOKEN}/img/{_JOB}/{_POSITION}", pages.image)
    app.router.add_get(f"/g/{_TOKEN}/thumb/{_JOB}/{_POSITION}", pages.thumbnail)
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _headers_for(pages: _Pages) -> Any:
    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response: web.StreamResponse
        try:
            response = await handler(request)
        except _Answer as answer:
            response = answer.response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = pages.error_page(exc.status, exc.reason)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Links carry their token in the path: never hand it to another site.
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return headers


class _Pages:
    def __init__(self, context: WebContext) -> None:
        self.c = context
        self.images = Images(context.outputs_dir)
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("bot.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.root = urlsplit(context.public_url).path.rstrip("/")

    # -- operators -----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        result = await health.check(
            discord_connected=self.c.discord_connected,
            ping_database=self.c.store.gallery.ping,
            monitor=self.c.monitor,
        )
        return web.json_response(result.body(), status=200 if result.ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        try:
            unfinished = await self.c.store.gallery.unfinished_counts()
        except Exception:  # the database is down: still report what is in memory
            log.warning("metrics: could not read the jobs from the database")
            unfinished = []
        body = self.c.metrics.render(unfinished)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        suffix = Path(name).suffix
        resource = resources.files("bot.web").joinpath("static", name)
        if suffix not in _STATIC_TYPES or not resource.is_file():
            raise web.HTTPNotFound()
        return web.Response(
            body=resource.read_bytes(),
            headers={
                "Content-Type": _STATIC_TYPES[suffix],
                "Cache-Control": "public, max-age=3600",
            },
        )

    # -- the gallery ---------------------------------------------------------------------------

    async def gallery(self, request: web.Request) -> web.StreamResponse:
        return await self._list(request, mine=False)

    async def mine(self, request: web.Request) -> web.StreamResponse:
        return await self._list(request, mine=True)

    async def _list(self, request: web.Request, *, mine: bool) -> web.StreamResponse:
        grant, base = await self._grant(request)
        try:
            filters = parse_filters(request.query, allowed=_FILTER_PARAMS)
        except BadQuery as exc:
            return self.error_page(400, str(exc), base=base)
        query = GalleryQuery(
            guild_id=grant.guild_id,
            channels=grant.channels,
            model=filters.model,
            user_id=grant.user_id if mine else filters.member,
            search=filters.search,
            before=filters.before,
            limit=PAGE_SIZE + 1,
        )
        jobs = await self.c.store.gallery.jobs(query)
        more = len(jobs) > PAGE_SIZE
        jobs = jobs[:PAGE_SIZE]
        names = await self.c.store.gallery.names(grant.guild_id, (j.user_id for j in jobs))
        here = f"{base}/mine" if mine else f"{base}/"
        next_url = None
        if more and jobs:
            older = filters.query(before=jobs[-1].id, member=None if mine else filters.member)
            next_url = f"{here}?{urlencode(older)}"
        tiles = [self._tile(grant, base, job, names) for job in jobs]
        values: dict[str, Any] = {"tiles": tiles, "next_url": next_url}
        if filters.partial:
            return self._html("_tiles.html", values)
        values.update(
            self._frame(grant, base, "mine" if mine else "all"),
            filters=filters,
            here=here,
            mine=mine,
            # The filters' choices come from the catalog and the names the bot has seen, not
            # from scanning the jobs: cheap however long the history.
            models=sorted(model.slug for model in self.c.catalog.all()),
            members=await self.c.store.gallery.recent_members(grant.guild_id),
            first_page=filters.before is None,
        )
        return self._html("gallery.html", values)

    async def job(self, request: web.Request) -> web.StreamResponse:
        grant, base = await self._grant(request)
        if request.query:
            return self.error_page(400, "this page takes no parameters", base=base)
        job = await self._visible_job(grant, request)
        names = await self.c.store.gallery.names(grant.guild_id, [job.user_id])
        model = self.c.catalog.get(job.model)
        inputs = []
        for key, value in job.inputs.items():
            spec = model.input(key) if model else None
            inputs.append((spec.label if spec else key, key, value))
        values = self._frame(grant, base, "job")
        values.update(
            job=job,
            tile=self._tile(grant, base, job, names),
            model_name=model.display_name if model else job.model,
            inputs=inputs,
            cost=_cost(job.cost),
            took=_took(job),
            created=_when(job.created_at),
            imagine=self._imagine_line(job),
            member=names.get(job.user_id or 0, f"member {job.user_id}"),
        )
        return self._html("job.html", values)

    async def spend(self, request: web.Request) -> web.StreamResponse:
        grant, base = await self._grant(request)
        if request.query:
            return self.error_page(400, "this page takes no parameters", base=base)
        if not grant.admin:
            return self.error_page(
                403, "Only members who manage this server see its spend.", base=base
            )
        by_day = await self.c.store.gallery.spend_by_day(grant.guild_id)
        by_model = await self.c.store.gallery.spend_by_model(grant.guild_id)
        budget = await self.c.store.gallery.budget(grant.guild_id)
        top = max((d.cost for d in by_day), default=Decimal(0)) or Decimal(1)
        values = self._frame(grant, base, "spend")
        values.update(
            by_day=[(d.day, d.jobs, _cost(d.cost), int(100 * d.cost / top)) for d in by_day],
            by_model=[(m.model, m.jobs, _cost(m.cost)) for m in by_model],
            total=_cost(sum((d.cost for d in by_day), Decimal(0))),
            budget=_cost(budget) if budget is not None else None,
        )
        return self._html("spend.html", values)

    async def image(self, request: web.Request) -> web.StreamResponse:
        output, _ = await self._output(request)
        path = self.images.original(output)
        if path is None:
            raise web.HTTPNotFound()
        return _file(path, output.content_type)

    async def thumbnail(self, request: web.Request) -> web.StreamResponse:
        output, _ = await self._output(request)
        path = await self.images.thumbnail(output)
        if path is None:
            raise web.HTTPNotFound()
        return _file(path, "image/webp")

    # -- helpers -------------------------------------------------------------------------------

    async def _grant(self, request: web.Request) -> tuple[Grant, str]:
        """The link's grant, or a page saying the link opens nothing."""
        token = request.match_info["token"]
        try:
            claims = verify(self.c.signing_key, token, now=self.c.clock())
        except BadLink as exc:
            expired = str(exc) == "expired"
            raise _Answer(
                self.error_page(
                    403,
                    "This link has expired." if expired else "This link is not valid.",
                    hint=_ASK_AGAIN,
                )
            ) from None
        grant = await self.c.store.gallery.grant(claims.grant_id)
        if (
            grant is None
            or grant.guild_id != claims.guild_id
            or grant.user_id != claims.user_id
            or grant.expires_at <= self.c.clock()
        ):
            raise _Answer(self.error_page(403, "This link is not valid.", hint=_ASK_AGAIN))
        grant = dataclasses.replace(grant, channels=self.c.visible_now(grant))
        return grant, f"{self.root}/g/{token}"

    async def _visible_job(self, grant: Grant, request: web.Request) -> Job:
        job = await self.c.store.gallery.job(int(request.match_info["job_id"]))
        if job is None or not grant.may_see(job):
            # The same answer for "no such job" and "not yours to see".
            raise web.HTTPNotFound()
        return job

    async def _output(self, request: web.Request) -> tuple[Output, Job]:
        grant, _ = await self._grant(request)
        job = await self._visible_job(grant, request)
        position = int(request.match_info["position"])
        for output in job.outputs:
            if output.position == position:
                return output, job
        raise web.HTTPNotFound()

    def _frame(self, grant: Grant, base: str, page: str) -> dict[str, Any]:
        return {
            "base": base,
            "static": f"{self.root}/static",
            "page": page,
            "admin": grant.admin,
            "guild": self.c.guild_name(grant.guild_id) or "this server",
            "expires": _when(grant.expires_at),
        }

    def _tile(self, grant: Grant, base: str, job: Job, names: dict[int, str]) -> dict[str, Any]:
        model = self.c.catalog.get(job.model)
        nsfw = bool(model and model.nsfw) or job.channel_id in grant.nsfw_channels
        return {
            "id": job.id,
            "url": f"{base}/job/{job.id}",
            "prompt": job.prompt,
            "model": job.model,
            "member": names.get(job.user_id or 0, f"member {job.user_id}"),
            "blur": nsfw and not grant.from_nsfw,
            "images": [
                {
                    "thumb": f"{base}/thumb/{job.id}/{o.position}",
                    "full": f"{base}/img/{job.id}/{o.position}",
                    "width": o.width,
                    "height": o.height,
                }
                for o in job.outputs
            ],
        }

    def _imagine_line(self, job: Job) -> str:
        parts = [f"/imagine prompt:{job.prompt}", f"model:{job.model}"]
        for key, value in job.inputs.items():
            if key in ("prompt", "model") or value is None or value == "":
                continue
            if key in self.c.imagine_options or key == "seed":
                parts.append(f"{key}:{value}")
        return " ".join(parts)

    def _html(self, template: str, values: dict[str, Any], status: int = 200) -> web.Response:
        body = self.templates.get_template(template).render(**values)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    def error_page(
        self, status: int, message: str | None, *, hint: str | None = None, base: str | None = None
    ) -> web.Response:
        if status == 404:  # the same words for "no such thing" and "not yours to see"
            message = "There is nothing here."
        values = {
            "static": f"{self.root}/static",
            "status": status,
            "message": message or "This page cannot be shown.",
            "hint": hint,
            "base": base,
        }
        return self._html("error.html", values, status=status)


def _file(path: Path, content_type: str) -> web.FileResponse:
    return web.FileResponse(
        path, headers={"Content-Type": content_type, "Cache-Control": IMAGE_CACHE}
    )


def _cost(value: float | Decimal | None) -> str | None:
    if value is None:
        return None
    text = f"{Decimal(str(value)):.4f}".rstrip("0").rstrip(".")
    return f"${text}"


def _took(job: Job) -> str | None:
    seconds = job.elapsed_seconds
    if seconds is None and job.finished_at and job.submitted_at:
        seconds = job.finished_at - job.submitted_at
    if seconds is None:
        return None
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
