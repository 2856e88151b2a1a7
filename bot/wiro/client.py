"""An async client for Wiro's HTTP API (see shared/wiro-api.md).

Every call is a JSON `POST` with fresh authentication headers. Answers are checked on both
readings of Wiro's documentation: the HTTP status, and the `result`/`errors` envelope of an
HTTP 200. Errors come out as the tree in `bot.wiro.exceptions`, with messages for people.

Retries are bounded, exponential with full jitter, and honour Retry-After. A Run is sent again
only when Wiro certainly did not take it (the connection could not be opened, or HTTP 429): a
Run whose answer was lost may have created a billed task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, ValidationError
from yarl import URL

from bot.wiro.auth import Credentials
from bot.wiro.download import Download, fetch_image
from bot.wiro.exceptions import (
    AuthError,
    ConcurrencyLimit,
    InsufficientBalance,
    InvalidResponse,
    NotFound,
    RateLimited,
    ServerError,
    TaskNotFound,
    ValidationFailed,
    WiroAPIError,
    WiroConnectionError,
    WiroError,
)
from bot.wiro.types import RunResult, Task, ToolDetail, ToolInput, price_rules

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wiro.ai/v1"

#: How a retry waits; injectable so tests need not sleep.
Sleep = Callable[[float], Awaitable[None]]
#: Told of every HTTP attempt: (endpoint path, "ok" or what went wrong, seconds).
CallObserver = Callable[[str, str, float], None]

_M = TypeVar("_M", bound=BaseModel)
_T = TypeVar("_T")

#: Wiro's messages for a refused key or signature (HTTP 401), and similar wording.
_AUTH_TEXT = re.compile(
    r"project authorization|signature authentication|requested ip .* not allowed"
    r"|x-signature|x-nonce|x-api-key|api key",
    re.IGNORECASE,
)
#: Code 0 messages that are about the inputs ("must be between 1 and 4").
_VALIDATION_TEXT = re.compile(
    r"must be|must not|between|required|invalid|not valid|not allowed|not supported"
    r"|too (?:long|short|large|small|big|many)|missing|expected|out of range|should be"
    r"|can ?not be empty|greater than|less than|at least|at most|unknown (?:parameter|input)",
    re.IGNORECASE,
)
#: Code 0 messages that are about Wiro's own trouble, worth another try.
_SERVER_TEXT = re.compile(
    r"internal|server error|try again|timed? ?out|unavailable|temporar|overloaded",
    re.IGNORECASE,
)
_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: `attempts` tries in all, full-jitter exponential backoff."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number `attempt` (counting from 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return random.uniform(0.0, ceiling) if ceiling > 0 else 0.0

    @property
    def max_retry_after(self) -> float:
        """The longest Retry-After waited for inside one call; longer ones are raised."""
        return self.max_delay * 4


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), or None."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def split_slug(slug: str) -> tuple[str, str]:
    """`"owner/project"` -> `("owner", "project")`; ValueError for anything else."""
    parts = slug.strip().split("/")
    if len(parts) != 2 or not all(part.strip() for part in parts):
        raise ValueError(f"{slug!r} is not a Wiro model name of the form owner/project")
    return parts[0].strip(), parts[1].strip()


class WiroClient:
    """Wiro's HTTP API. Takes aiohttp sessions it does not own and never closes them.

    `files`: a session for downloading outputs from Wiro's file server (its CDN, another
    host), with connections of its own. Without it, downloads share the API session's
    connections and its in-flight cap: when a thousand tasks end together, each Task/Detail
    then waits behind downloads for a connection, and each download behind the Details.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Credentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy = RetryPolicy(),
        request_timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        observer: CallObserver | None = None,
        files: aiohttp.ClientSession | None = None,
    ) -> None:
        self._session = session
        self._files = files
        self._observer = observer
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._retry = retry
        self._request_timeout = request_timeout
        # A connect timeout of its own: when it fires, the request was certainly not sent.
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout, sock_connect=min(request_timeout, 10.0)
        )
        self._sleep = sleep
        # After a 429 with Retry-After, no call at all goes before this (loop time).
        self._quiet_until = 0.0
        # No more requests in flight than the session has connections: a request is signed
        # when it is built, so one that then waited for a connection would reach Wiro with
        # a stale nonce, behind later ones (Wiro refuses replays).
        limit = getattr(session.connector, "limit", 0) or 100
        self._in_flight = asyncio.Semaphore(limit)
        # Downloads carry no nonce: on their own connections they need no cap of ours.
        self._downloads: contextlib.AbstractAsyncContextManager[Any] = (
            self._in_flight if files is None else contextlib.nullcontext()
        )

    @property
    def credentials(self) -> Credentials:
        """Whose requests these are (their nonces: `Credentials.nonces`)."""
        return self._credentials

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

    def __repr__(self) -> str:
        return f"WiroClient(base_url={self._base_url!r})"

    # -- the API ---------------------------------------------------------------------------

    async def run(self, slug: str, inputs: Mapping[str, Any]) -> RunResult:
        """Start a task of model `slug` ("owner/project"). Never sent twice blindly."""
        owner, project = split_slug(slug)
        path = f"Run/{quote(owner, safe='')}/{quote(project, safe='')}"
        what = f"the model {owner}/{project}"
        data = await self._call(path, dict(inputs), what=what, idempotent=False)
        if "taskid" in data and data.get("socketaccesstoken") is None:
            data = {**data, "socketaccesstoken": ""}
        return self._model(RunResult, data, what="Run (a task may have been started)")

    async def task_detail(
        self, *, task_id: str | None = None, task_token: str | None = None
    ) -> Task:
        """A task's state, by id or by its socket access token."""
        if (task_id is None) == (task_token is None):
            raise ValueError("give exactly one of task_id and task_token")
        if task_id is not None:
            body, what = {"taskid": str(task_id)}, f"task {task_id}"
        else:
            body, what = {"tasktoken": str(task_token)}, "that task"
        try:
            data = await self._call("Task/Detail", body, what=what)
        except NotFound as exc:
            # "There is no task yet.": a task Run just created may not be visible yet.
            raise TaskNotFound(exc.message, status=exc.status, code=exc.code) from None
        task = self._task_in(data, what)
        if task is None:
            raise InvalidResponse(
                f"Wiro sent an answer this bot cannot read (no task list for {what})."
            )
        return task

    async def list_tasks(
        self, *, model: str | None = None, start: int = 0, limit: int = 20
    ) -> list[Task]:
        """The project's recent tasks, newest first (Task/List, as Wiro's MCP client uses
        it; not in the public docs). `model` narrows it to one model's tasks."""
        body: dict[str, Any] = {
            "start": str(start),
            "limit": str(limit),
            "sort": "id",
            "order": "DESC",
        }
        if model is not None:
            body.update(type="model", modelName=model)
        data = await self._call("Task/List", body, what="the project's tasks")
        tasklist = data.get("tasklist")
        if tasklist is None:
            return []
        if not isinstance(tasklist, list):
            raise InvalidResponse("Wiro sent an answer this bot cannot read (Task/List).")
        return [self._model(Task, item, what="Task/List") for item in tasklist]

    async def cancel_task(self, task_id: str) -> Task:
        """Cancel a task that is still waiting (Task/Cancel); see `kill_task` for running ones."""
        return await self._stop("Task/Cancel", task_id)

    async def kill_task(self, task_id: str) -> Task:
        """Stop a task that is running (Task/Kill)."""
        return await self._stop("Task/Kill", task_id)

    async def tool_detail(self, slug: str) -> ToolDetail:
        """A model's description and inputs, from Tool/Detail."""
        owner, project = split_slug(slug)
        what = f"the model {owner}/{project}"
        data = await self._call(
            "Tool/Detail", {"slugowner": owner, "slugproject": project}, what=what
        )
        tools = data.get("tool")
        if not isinstance(tools, list):
            raise InvalidResponse(
                f"Wiro sent an answer this bot cannot read (no tool list for {what})."
            )
        if not tools:
            raise NotFound(f"Wiro does not know {what}.", code=1)
        tool = tools[0]
        if not isinstance(tool, dict):
            raise InvalidResponse(f"Wiro sent an answer this bot cannot read (for {what}).")
        inputs = [
            self._model(ToolInput, item, what=f"Tool/Detail of {owner}/{project}")
            for item in _tool_items(tool.get("parameters"))
        ]
        return self._model(
            ToolDetail,
            {
                "slug": f"{owner}/{project}",
                "name": _text(tool.get("title")) or _text(tool.get("name")) or project,
                "description": _text(tool.get("description")),
                "categories": _categories(tool.get("categories")),
                "inputs": inputs,
                "dynamicprice": price_rules(tool.get("dynamicprice")),
                "approximatelycost": tool.get("approximatelycost"),
            },
            what=f"Tool/Detail of {owner}/{project}",
        )

    async def download(self, url: str, *, max_bytes: int = 25 * 1024 * 1024) -> Download:
        """Fetch an output image (no credentials are sent). Raises `DownloadError`."""

        session = self._files or self._session

        async def fetch() -> Download:
            async with self._downloads:  # on the API's connections, it holds one of them
                return await fetch_image(
                    session, url, max_bytes=max_bytes, request_timeout=self._request_timeout
                )

        return await self._retrying(fetch, idempotent=True, label="download")

    # -- plumbing --------------------------------------------------------------------------

    async def _stop(self, path: str, task_id: str) -> Task:
        what = f"task {task_id}"
        data = await self._call(path, {"taskid": str(task_id)}, what=what)
        task = self._task_in(data, what)
        if task is None:
            # The answer did not carry the task: ask for it.
            return await self.task_detail(task_id=task_id)
        return task

    def _task_in(self, data: dict[str, Any], what: str) -> Task | None:
        tasklist = data.get("tasklist")
        if isinstance(tasklist, list):
            if not tasklist:
                raise NotFound(f"Wiro does not know {what}.", code=1)
            return self._model(Task, tasklist[0], what=what)
        task = data.get("task")
        if isinstance(task, dict):
            return self._model(Task, task, what=what)
        return None

    def _model(self, model: type[_M], data: Any, *, what: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]}))
            detail = f"bad or missing {fields}" if fields else "unexpected shape"
            raise InvalidResponse(
                f"Wiro sent an answer this bot cannot read ({what}: {detail})."
            ) from None

    async def _call(
        self, path: str, body: Mapping[str, Any], *, what: str, idempotent: bool = True
    ) -> dict[str, Any]:
        payload = json.dumps(body)
        return await self._retrying(
            lambda: self._observed(path, payload, what=what), idempotent=idempotent, label=path
        )

    async def _observed(self, path: str, payload: str, *, what: str) -> dict[str, Any]:
        """One POST, told to the observer (metrics): endpoint, outcome, seconds."""
        if self._observer is None:
            return await self._post(path, payload, what=what)
        started = time.monotonic()
        outcome = "ok"
        try:
            return await self._post(path, payload, what=what)
        except WiroAPIError as exc:
            if exc.status == 429:
                outcome = "429"
            else:
                outcome = f"code_{exc.code}" if exc.code else type(exc).__name__
            raise
        except WiroError as exc:
            outcome = type(exc).__name__
            raise
        finally:
            self._observer(path, outcome, time.monotonic() - started)

    async def _retrying(
        self, attempt: Callable[[], Awaitable[_T]], *, idempotent: bool, label: str
    ) -> _T:
        tries = 1
        while True:
            try:
                return await attempt()
            except WiroError as exc:
                limited = isinstance(exc, RateLimited)
                delay = self._retry_delay(exc, tries, idempotent=idempotent)
                if delay is None:
                    raise
                log.info(
                    "Wiro %s failed (try %d of %d), again in %.2f s: %s",
                    label,
                    tries,
                    self._retry.attempts,
                    delay,
                    exc,
                )
            await self._sleep(delay)
            if limited:
                # This call waited out the pause itself; it need not wait again below.
                self._quiet_until = min(self._quiet_until, asyncio.get_running_loop().time())
            tries += 1

    def _retry_delay(self, exc: WiroError, tries: int, *, idempotent: bool) -> float | None:
        """How long to wait before trying again, or None to give up and raise `exc`."""
        if tries >= self._retry.attempts or isinstance(exc, ConcurrencyLimit):
            return None
        if idempotent:
            if not exc.retryable:
                return None
        elif not (
            isinstance(exc, RateLimited)
            or (isinstance(exc, WiroConnectionError) and not exc.reached)
        ):
            return None
        delay = self._retry.backoff(tries)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            if exc.retry_after > self._retry.max_retry_after:
                return None  # too long to wait inside one call: let the caller schedule it
            delay = max(delay, exc.retry_after)
        return delay

    async def _post(self, path: str, payload: str, *, what: str) -> dict[str, Any]:
        """One POST: raises the matching `WiroError`, or returns the answer's JSON object."""
        url = f"{self._base_url}/{path}"
        quiet = self._quiet_until - asyncio.get_running_loop().time()
        if quiet > 0:
            # Wiro asked for a pause (429 Retry-After): it holds for every call, not just
            # the one that was told.
            await self._sleep(quiet)
        try:
            async with self._in_flight:
                headers = self._credentials.headers()  # signed now: a connection is free
                headers["Content-Type"] = "application/json"
                async with self._session.post(
                    url, data=payload.encode(), headers=headers, timeout=self._timeout
                ) as resp:
                    status = resp.status
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raw = await resp.read()
        except aiohttp.InvalidURL:
            raise WiroError(f"The Wiro address is not a valid URL: {self._base_url}") from None
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise WiroConnectionError(
                f"Could not connect to Wiro at {_host(self._base_url)}; "
                "the network or Wiro may be down.",
                reached=False,
            ) from exc
        except TimeoutError as exc:
            raise WiroConnectionError(
                f"Wiro did not answer within {self._request_timeout:g} seconds.", reached=True
            ) from exc
        except aiohttp.ClientError as exc:
            raise WiroConnectionError(
                f"The connection to Wiro broke before it answered ({type(exc).__name__}).",
                reached=True,
            ) from exc
        return self._interpret(status, raw, retry_after, what=what)

    def _interpret(
        self, status: int, raw: bytes, retry_after: float | None, *, what: str
    ) -> dict[str, Any]:
        if status == 429:
            if retry_after is not None:
                until = asyncio.get_running_loop().time() + min(
                    retry_after, self._retry.max_retry_after
                )
                self._quiet_until = max(self._quiet_until, until)
            wait = (
                f"try again in {math.ceil(retry_after)} seconds"
                if retry_after is not None
                else "try again shortly"
            )
            raise RateLimited(
                f"Wiro is limiting how fast this bot may call it (HTTP 429); {wait}.",
                retry_after=retry_after,
                status=status,
            )
        try:
            data: Any = json.loads(raw)
        except ValueError:  # also UnicodeDecodeError
            data = None
        if not isinstance(data, dict):
            raise self._error(status, None, "", what=what, unreadable=True)

        errors = data.get("errors")
        entries = [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []
        result = data.get("result")
        failed = status >= 400 or result is False or (result is not True and bool(entries))
        if not failed:
            return data

        code: int | None = None
        for entry in entries:
            try:
                code = int(entry.get("code"))  # type: ignore[arg-type]
                break
            except (TypeError, ValueError):
                continue
        messages = [_text(e.get("message")).strip() for e in entries]
        message = "; ".join(m for m in messages if m)
        message = self._credentials.redact(message)
        if len(message) > _MESSAGE_LIMIT:
            message = message[: _MESSAGE_LIMIT - 1] + "…"
        raise self._error(status, code, message, what=what)

    def _error(
        self, status: int, code: int | None, message: str, *, what: str, unreadable: bool = False
    ) -> WiroError:
        kw: dict[str, int | None] = {"status": status, "code": code}
        if status in (401, 403) or code in (98, 99) or _AUTH_TEXT.search(message):
            return AuthError(_auth_words(status, code, message), **kw)
        if code == 96:
            return ConcurrencyLimit(
                "The Wiro project is already running as many tasks as its balance allows.", **kw
            )
        if code == 97:
            return InsufficientBalance(
                "The Wiro project's balance is too low; an admin must top it up.", **kw
            )
        if status >= 500:
            return ServerError(
                f"Wiro is having trouble (HTTP {status}); try again in a minute.", **kw
            )
        if code == 1 or status == 404:
            said = f" ({message})" if message else ""
            return NotFound(f"Wiro does not know {what}{said}.", **kw)
        if unreadable:
            return InvalidResponse(
                f"Wiro sent an answer this bot cannot read (HTTP {status}, not a JSON object)."
            )
        if code in (0, None) and message:
            if _VALIDATION_TEXT.search(message):
                return ValidationFailed(f"Wiro refused the inputs: {message}", **kw)
            if _SERVER_TEXT.search(message):
                return ServerError(
                    f"Wiro is having trouble ({message}); try again in a minute.", **kw
                )
        said = message or f"HTTP {status}"
        return WiroAPIError(f"Wiro refused the request: {said}", **kw)


def _auth_words(status: int, code: int | None, message: str) -> str:
    """What is actually wrong with the credentials, from Wiro's 401 texts."""
    said = f" (Wiro said: {message.rstrip('.')})" if message else f" (HTTP {status})"
    lowered = message.lower()
    if "not founded" in lowered or "not found" in lowered:
        what = "Wiro does not know this API key: check wiro.api_key"
    elif "requires signature" in lowered or "x-signature and x-nonce" in lowered:
        what = (
            "This Wiro project needs signature authentication: set wiro.api_secret to the "
            "project's API secret"
        )
    elif "not valid" in lowered:
        what = (
            "Wiro refused the signature: the API secret does not match the key "
            "(check wiro.api_secret)"
        )
    elif "ip" in lowered and "not allowed" in lowered:
        what = (
            "Wiro does not accept calls from this machine's IP address: allow it in the "
            "Wiro project's settings"
        )
    elif code == 98:
        what = "Wiro asks for a sign-in this bot cannot give: use a project API key"
    elif code == 99:
        what = "Wiro refused the bearer token: use a project API key"
    else:
        what = "Wiro refused the API key"
    return f"{what}{said}."


def _host(url: str) -> str:
    try:
        return URL(url).host or url
    except (TypeError, ValueError):
        return url


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _categories(value: Any) -> list[str]:
    if isinstance(value, str):
        # Sometimes a JSON string ('["tool", "text-to-image"]'), sometimes "a, b".
        try:
            value = json.loads(value)
        except ValueError:
            value = [part.strip() for part in value.split(",")]
        if isinstance(value, str):
            value = [value]
    if not isinstance(value, list):
        return []
    out: list[str] = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("value") or item.get("name") or item.get("slug") or item.get("title")
        if item:
            out.append(str(item))
    return out


def _tool_items(parameters: Any) -> list[dict[str, Any]]:
    """`tool[0].parameters[].items[]`, flattened, each with an `id` and list options."""
    if isinstance(parameters, str):
        try:
            parameters = json.loads(parameters)
        except ValueError:
            return []
    if not isinstance(parameters, list):
        return []
    raw: list[Any] = []
    for group in parameters:
        if not isinstance(group, dict):
            continue
        items = group.get("items")
        if isinstance(items, list):
            raw.extend(items)
        elif "id" in group:  # a bare item, not a group
            raw.append(group)
    out: list[dict[str, Any]] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        ident = item.get("id") or item.get("name")
        if not ident:
            continue
        item = {**item, "id": str(ident)}
        options = item.get("options")
        if isinstance(options, list):
            item["options"] = [
                opt if isinstance(opt, dict) else {"value": opt, "label": str(opt)}
                for opt in options
            ]
        elif options is not None:
            item["options"] = []
        out.append(item)
    return out
