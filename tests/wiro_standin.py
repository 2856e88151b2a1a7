"""A stand-in Wiro: a real HTTP server on 127.0.0.1 that behaves like Wiro's API.

For tests and benchmarks. It checks authentication exactly as shared/wiro-api.md describes,
walks tasks through Wiro's statuses with time, serves output PNGs from its own CDN route, and
records what it was sent. Faults can be injected per endpoint.

    async with WiroStandIn(run_seconds=0.05) as wiro:
        client = WiroClient(session, Credentials(wiro.api_key, wiro.api_secret),
                            base_url=wiro.base_url)
        result = await client.run("owner/model", {"prompt": "a cat"})
        wiro.tasks[result.taskid].status          # -> TaskStatus, computed from the clock

Task life (not held): `queue_seconds` in task_queue, then the nine working statuses
(task_accept ... task_postprocess_start) share `run_seconds` evenly, then the task is terminal.
A task's status is computed from timestamps when asked, so a thousand tasks cost nothing while
nobody looks. For deterministic tests, `hold()` keeps new tasks in task_queue until `advance()`
or `finish()` moves them.

Endpoint names used by `calls`, `fail_next`: "run", "detail", "cancel", "kill", "tool_detail",
"list" (Task/List), "cdn".

Limits and task semantics (see "-- limits and task semantics --" below): `fail_always()` for a
sustained refusal (e.g. code 96 on every Run, counted in `calls["run"]`), "drop_unseen" (a Run
lost before Wiro saw it), `hide_new_tasks` ("There is no task yet."), `stop_cost` (the
`totalcost` a Cancel/Kill answer carries), the outcomes "task_error_then_success" and
"task_error_hanging", and Task/List.
"""

from __future__ import annotations

import asyncio
import collections
import email.parser
import email.policy
import hashlib
import json
import secrets
import string
import struct
import time
import uuid
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aiohttp import web

from bot.wiro.auth import sign
from bot.wiro.types import TERMINAL_STATUSES, WAITING_STATUSES, TaskStatus

ENDPOINTS = frozenset({"run", "detail", "cancel", "kill", "tool_detail", "list", "cdn"})
FAULTS = frozenset(
    {
        "http500",
        "http502",
        "http429",
        "garbage",
        "http401",
        "http401ip",
        "code96",
        "code97",
        "drop",
        "drop_unseen",
    }
)
OUTCOMES = frozenset(
    {
        "success",
        "failed",
        "task_error",
        "stuck",
        "cdn404",
        "task_error_then_success",
        "task_error_hanging",
    }
)

AUTH_NOT_FOUND = "Project authorization is not founded."
AUTH_NEEDS_SIGNATURE = (
    "Project requires signature authentication. x-signature and x-nonce headers are required."
)
AUTH_NOT_VALID = "Project authorization is not valid."
AUTH_IP_NOT_ALLOWED = "Requested ip 203.0.113.9 is not allowed."
NO_TASK_YET = "There is no task yet."
CONCURRENCY_MESSAGE = "Concurrent task limit reached. Please wait for a running task to finish."
BALANCE_MESSAGE = "Insufficient balance. Please add funds to your project."
CANNOT_CANCEL = "Task can not be cancelled"
CANNOT_KILL = "Task can not be killed"

#: What a task that fails with outcome "failed" says in `debugerror`.
FAILED_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/inference.py", line 112, in <module>\n'
    "    images = pipe(**arguments).images\n"
    '  File "/usr/lib/python3/site-packages/torch/nn/modules/module.py", line 1511, in _call\n'
    "    return forward_call(*args, **kwargs)\n"
    "RuntimeError: CUDA out of memory"
)
TASK_ERROR_MESSAGE = "Task could not be started: model files could not be loaded."

#: Cost of one output image of a successful task, in dollars (also its `cpo` price).
COST_PER_IMAGE = 0.003
#: What a cancelled or killed task shows as its `totalcost` (the seed's Cancel/Kill answers).
STOPPED_COST = "0.000585000000"
#: Tool/Detail's `approximatelycost` for every model unless `set_pricing` says otherwise.
APPROXIMATE_COST = "0.004000000000"

#: The statuses between task_queue and the end, sharing `run_seconds` evenly.
WORKING = (
    TaskStatus.ACCEPT,
    TaskStatus.PREPROCESS_START,
    TaskStatus.PREPROCESS_END,
    TaskStatus.ASSIGN,
    TaskStatus.START,
    TaskStatus.OUTPUT,
    TaskStatus.OUTPUT_FULL,
    TaskStatus.END,
    TaskStatus.POSTPROCESS_START,
)
_STUCK_AT = WORKING.index(TaskStatus.START)
#: Outcomes whose walk never reaches a terminal status by itself.
_NEVER_ENDS = frozenset({"stuck", "task_error_hanging"})
#: Where "task_error_then_success" shows task_error for a while.
_PASSING_ERROR = frozenset({TaskStatus.ASSIGN, TaskStatus.START})
_ERROR_AFTER = WORKING.index(TaskStatus.PREPROCESS_END)
#: From this status on, a successful task shows its outputs.
_OUTPUTS_FROM = frozenset(
    {
        TaskStatus.OUTPUT_FULL,
        TaskStatus.END,
        TaskStatus.POSTPROCESS_START,
        TaskStatus.POSTPROCESS_END,
    }
)

_TIMESTAMP_FIELDS = {
    TaskStatus.ACCEPT: "accepttime",
    TaskStatus.PREPROCESS_START: "preprocessstarttime",
    TaskStatus.PREPROCESS_END: "preprocessendtime",
    TaskStatus.ASSIGN: "assigntime",
    TaskStatus.START: "starttime",
    TaskStatus.END: "endtime",
    TaskStatus.POSTPROCESS_START: "postprocessstarttime",
    TaskStatus.POSTPROCESS_END: "postprocessendtime",
}

_TOKEN_ALPHABET = string.ascii_letters + string.digits


@lru_cache(maxsize=4096)
def png_bytes(rgb: tuple[int, int, int], size: int = 64) -> bytes:
    """A small, real, single-colour PNG. Written out by hand: Pillow took a third of a
    millisecond an image, and a benchmark's thousands of tasks each have their own colour
    (the stand-in shares the machine with the bot it serves)."""
    pixels = zlib.compress((b"\x00" + bytes(rgb) * size) * size)  # filter 0, then RGB

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def colour_for(seed: Any, index: int) -> tuple[int, int, int]:
    """The colour of output `index` of a task with `seed`: the same seed, the same image."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return digest[0], digest[1], digest[2]


@dataclass
class RunCall:
    """One Run request as received (headers are not kept)."""

    slug: str
    body: dict[str, Any]
    #: The created task, or None when the Run was refused.
    task_id: str | None
    #: Wiro's error code when refused (0 validation, 1 unknown model, 96 concurrency, ...).
    error_code: int | None = None
    #: "json", "multipart" or "form".
    encoding: str = "json"


@dataclass(eq=False)
class FakeTask:
    """A task at the stand-in. `status`, `started_at`, `finished_at` follow the clock."""

    id: str
    token: str
    slug: str
    inputs: dict[str, Any]
    outcome: str
    #: time.monotonic() when Run created it, and the matching unix time.
    created_at: float
    created_unix: float
    queue_seconds: float
    run_seconds: float
    images: int
    #: "cancel" or "kill" once stopped that way.
    stopped_by: str | None = None
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    # When the clock-driven walk began (None while held), a status pinned by advance(),
    # a terminal status reached by hand, and when each status was reached by hand.
    _walk_from: float | None = None
    _pinned: TaskStatus | None = None
    _final: TaskStatus | None = None
    _finished: float | None = None
    _marks: dict[TaskStatus, float] = field(default_factory=dict)
    #: Percent shown as a progress bar in debugoutput while running (set by report_progress),
    #: with the step and total steps it shows ("18/30"; default: the percent of 100).
    progress: int | None = None
    #: What a Cancel or Kill of this task costs (`totalcost` of the stopped task).
    stop_cost: float = 0.0
    #: Task/Detail calls still to answer "There is no task yet.".
    hidden_for: int = 0
    progress_steps: tuple[int, int] | None = None

    # -- the clock-driven walk --------------------------------------------------------------

    def _walk_end(self) -> float | None:
        """When the walk reaches its terminal status (None: held, pinned or stuck)."""
        if self._walk_from is None or self._pinned is not None or self.outcome in _NEVER_ENDS:
            return None
        return self._walk_from + self.queue_seconds + self.run_seconds

    def _walk_status(self, now: float) -> TaskStatus:
        if self._walk_from is None:
            return TaskStatus.QUEUE
        elapsed = now - self._walk_from - self.queue_seconds
        if elapsed < 0:
            return TaskStatus.QUEUE
        end = self._walk_end()
        if end is not None and now >= end:
            return TaskStatus.ERROR if self.outcome == "task_error" else TaskStatus.POSTPROCESS_END
        step = self.run_seconds / len(WORKING)
        index = int(elapsed / step) if step > 0 else len(WORKING) - 1
        index = min(index, len(WORKING) - 1)
        if self.outcome == "stuck":
            index = min(index, _STUCK_AT)
        elif self.outcome == "task_error":
            index = min(index, _ERROR_AFTER)
        elif self.outcome == "task_error_hanging" and index > _ERROR_AFTER:
            return TaskStatus.ERROR  # for good, without ever ending
        elif self.outcome == "task_error_then_success" and WORKING[index] in _PASSING_ERROR:
            return TaskStatus.ERROR  # a passing state: the walk goes on
        return WORKING[index]

    def _reached(self, status: TaskStatus, now: float) -> float | None:
        """time.monotonic() at which the task reached `status`, if it did."""
        if status in self._marks:
            return self._marks[status]
        if self._walk_from is None or self._pinned is not None:
            return None
        limit = now if self._finished is None else min(now, self._finished)
        start = self._walk_from + self.queue_seconds
        at: float | None
        if status is TaskStatus.QUEUE:
            at = self.created_at
        elif status in WORKING:
            index = WORKING.index(status)
            if (self.outcome == "stuck" and index > _STUCK_AT) or (
                self.outcome == "task_error" and index > _ERROR_AFTER
            ):
                return None
            at = start + index * self.run_seconds / len(WORKING)
        elif status is (
            TaskStatus.ERROR if self.outcome == "task_error" else TaskStatus.POSTPROCESS_END
        ):
            at = self._walk_end()
        else:
            return None
        return at if at is not None and at <= limit else None

    # -- public view ------------------------------------------------------------------------

    def _status_at(self, now: float) -> TaskStatus:
        if self._final is not None:
            return self._final
        if self._pinned is not None:
            return self._pinned
        return self._walk_status(now)

    @property
    def status(self) -> TaskStatus:
        return self._status_at(time.monotonic())

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def started_at(self) -> float | None:
        """time.monotonic() when the task reached task_start, if it did."""
        return self._reached(TaskStatus.START, time.monotonic())

    @property
    def finished_at(self) -> float | None:
        """time.monotonic() when the task became terminal, if it did."""
        if self._finished is not None:
            return self._finished
        end = self._walk_end()
        if end is not None and time.monotonic() >= end:
            return end
        return None

    @property
    def succeeded(self) -> bool:
        return self.status is TaskStatus.POSTPROCESS_END and self.outcome != "failed"

    def _stop(self, status: TaskStatus, now: float) -> None:
        self._final = status
        self._finished = now
        self._marks[status] = now


def _progress_bar(task: FakeTask, status: TaskStatus) -> str:
    if task.progress is None or status in TERMINAL_STATUSES:
        return ""
    bar = "#" * (task.progress // 10)
    step, total = task.progress_steps or (task.progress, 100)
    return f"Loading pipeline components...\n{task.progress:3d}%|{bar:<10}| {step}/{total}\n"


class WiroStandIn:
    """A fake Wiro API and CDN on 127.0.0.1. Use `async with`, or `start()` and `close()`.

    Parameters:
        api_key, api_secret: the project's credentials; `api_secret=None` is key-only mode.
        run_seconds: how long a task works after leaving the queue.
        queue_seconds: how long a task waits in task_queue first.
        concurrency_limit: how many unfinished tasks the project may have; beyond it Run
            answers code 96 (None: no limit).
        images_per_sample: one output PNG per `samples` (else always one).
        nonce_window_ms: a signature-mode nonce must be new for the key and greater than
            (highest nonce seen - this). 0 demands strictly increasing arrival; the default
            tolerates parallel requests arriving slightly out of order.
        always_200: answer auth errors with HTTP 200 and the error envelope (the other reading
            of Wiro's docs) instead of HTTP 401.
        models: if given, only these slugs exist; others answer code 1.
        port: the port to listen on (0: any free port).
    """

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        api_secret: str | None = "test-secret",
        run_seconds: float = 0.05,
        queue_seconds: float = 0.0,
        concurrency_limit: int | None = None,
        images_per_sample: bool = True,
        nonce_window_ms: int = 10_000,
        always_200: bool = False,
        models: Iterable[str] | None = None,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret or None
        self.run_seconds = run_seconds
        self.queue_seconds = queue_seconds
        self.concurrency_limit = concurrency_limit
        self.images_per_sample = images_per_sample
        self.nonce_window_ms = nonce_window_ms
        self.always_200 = always_200
        self.models = set(models) if models is not None else None
        self._port = port

        self.base_url = ""
        self.cdn_url = ""
        self.runs: list[RunCall] = []
        self.tasks: dict[str, FakeTask] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.detail_calls: collections.Counter[str] = collections.Counter()
        #: Nonces accepted, in arrival order (signature mode).
        self.nonces: list[int] = []
        #: Requests refused for their authentication, by Wiro's message.
        self.auth_failures: collections.Counter[str] = collections.Counter()
        #: CDN requests that carried Wiro credentials (there should be none).
        self.cdn_requests_with_credentials = 0

        self._faults: dict[str, collections.deque[tuple[str, float | None]]] = {
            name: collections.deque() for name in ENDPOINTS
        }
        self._outcomes: collections.deque[str] = collections.deque()
        self._held = False
        self._by_token: dict[str, FakeTask] = {}
        self._active: set[str] = set()
        self._next_id = 1000
        self._seen_nonces: set[int] = set()
        self._max_nonce = 0
        self._files: dict[str, tuple[bytes, str, bool]] = {}
        self._tools: dict[str, dict[str, Any]] = {}
        self._pricing: dict[str, dict[str, Any]] = {}
        self._runner: web.AppRunner | None = None
        #: Faults every call of an endpoint gets until `stop_failing` (see `fail_always`).
        self._always: dict[str, tuple[str, float | None]] = {}
        #: Task/Detail answers "There is no task yet." this many times for each new task.
        self.hide_new_tasks = 0
        #: `totalcost` of a task stopped by Cancel or Kill (the seeds show it can be non-zero).
        self.stop_cost = float(STOPPED_COST)
        #: Wiro's WebSocket (see the section "The socket" below); `socket_url` once started.
        self.socket = SocketSide(self)
        self.socket_url = ""

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/Run/{owner}/{project}", self._handle_run)
        app.router.add_post("/v1/Task/Detail", self._handle_detail)
        app.router.add_post("/v1/Task/Cancel", self._handle_cancel)
        app.router.add_post("/v1/Task/Kill", self._handle_kill)
        app.router.add_post("/v1/Tool/Detail", self._handle_tool_detail)
        app.router.add_post("/v1/Task/List", self._handle_list)
        app.router.add_get("/cdn/{path:.+}", self._handle_cdn)
        app.router.add_get("/socket", self.socket.handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=4096)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.cdn_url = f"http://127.0.0.1:{port}/cdn"
        self.socket_url = f"ws://127.0.0.1:{port}/socket"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> WiroStandIn:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- test controls ------------------------------------------------------------------------

    def fail_next(
        self, endpoint: str, fault: str, *, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Make the next `times` calls of `endpoint` fail with `fault`.

        Faults: "http500" (JSON envelope, HTTP 500), "http502" (an HTML gateway page),
        "http429" (with `Retry-After: retry_after` when given), "garbage" (HTTP 200, not JSON),
        "http401" ("Project authorization is not valid."), "code96", "code97", and "drop":
        the connection is closed without an answer. For run, cancel and kill, "drop" acts
        first (the task is created / stopped) and then drops: a lost answer.
        """
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(ENDPOINTS)}")
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        self._faults[endpoint].extend([(fault, retry_after)] * times)

    def next_outcome(self, outcome: str, *, times: int = 1) -> None:
        """How the next `times` created tasks end.

        "success" (the default), "failed" (task_postprocess_end, pexit "1", a CUDA traceback in
        debugerror, no outputs, cost "0"), "task_error" (final status task_error), "stuck"
        (never leaves task_start), "cdn404" (succeeds, but its output URLs answer 404).
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {sorted(OUTCOMES)}")
        self._outcomes.extend([outcome] * times)

    # -- limits and task semantics -------------------------------------------------------------

    def fail_always(self, endpoint: str, fault: str, *, retry_after: float | None = None) -> None:
        """Every call of `endpoint` fails with `fault` until `stop_failing` (after any
        `fail_next` faults): e.g. a Wiro that stays full ("code96") or keeps answering 429."""
        if endpoint not in ENDPOINTS or fault not in FAULTS:
            raise ValueError(f"unknown endpoint or fault: {endpoint!r}, {fault!r}")
        self._always[endpoint] = (fault, retry_after)

    def stop_failing(self, endpoint: str) -> None:
        self._always.pop(endpoint, None)

    def task_list(self, model: str | None = None) -> list[dict[str, Any]]:
        """What Task/List answers: the project's tasks, newest first."""
        tasks = [t for t in self.tasks.values() if model is None or t.slug == model]
        tasks.sort(key=lambda t: int(t.id), reverse=True)
        return [self._task_json(t) for t in tasks]

    async def _handle_list(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault("list")
        if fault is not None:
            return self._drop(request) if fault[0] == "drop" else self._fault_response(*fault)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        body, _ = await self._body(request)
        body = body or {}
        try:
            start = int(str(body.get("start", 0)))
            limit = int(str(body.get("limit", 20)))
        except ValueError:
            return self._envelope(0, "start and limit must be numbers")
        model = body.get("modelName")
        tasks = self.task_list(str(model) if model else None)
        return web.json_response(
            {
                "result": True,
                "errors": [],
                "total": str(len(tasks)),
                "tasklist": tasks[start : start + limit],
            }
        )

    def hold(self) -> None:
        """From now on, new tasks stay in task_queue until advance() or finish()."""
        self._held = True

    def release(self) -> None:
        """Stop holding: held tasks not moved by hand start their walk now, as do new ones."""
        self._held = False
        now = time.monotonic()
        for task in self.tasks.values():
            if task._walk_from is None and task._pinned is None and task._final is None:
                task._walk_from = now

    def advance(self, task_id: str, status: TaskStatus) -> None:
        """Put a task in `status` until moved again (a terminal status ends it for good)."""
        task = self.tasks[task_id]
        now = time.monotonic()
        if status in TERMINAL_STATUSES:
            task._stop(status, now)
        else:
            task._pinned = status
            task._marks.setdefault(status, now)

    def report_progress(
        self, task_id: str, percent: int, step: int | None = None, total: int | None = None
    ) -> None:
        """Show a tqdm progress bar at `percent` (and `step`/`total`, when given) in the task's
        debugoutput while it runs."""
        self.tasks[task_id].progress = percent
        self.tasks[task_id].progress_steps = (step, total) if step and total else None

    def finish(self, task_id: str) -> None:
        """End a task now, the way its outcome says (a "stuck" task succeeds)."""
        task = self.tasks[task_id]
        final = TaskStatus.ERROR if task.outcome == "task_error" else TaskStatus.POSTPROCESS_END
        self.advance(task_id, final)

    def add_file(
        self, name: str, content: bytes, content_type: str, *, chunked: bool = False
    ) -> str:
        """Serve `content` from the CDN route; returns its URL.

        `chunked=True` sends it without a Content-Length, in 16 KiB pieces.
        """
        self._files[f"files/{name}"] = (content, content_type, chunked)
        return f"{self.cdn_url}/files/{name}"

    def add_tool(
        self,
        slug: str,
        items: list[dict[str, Any]],
        *,
        title: str | None = None,
        description: str = "",
        categories: Iterable[str] | str = ("model", "text-to-image"),
    ) -> None:
        """What Tool/Detail answers for `slug`: `items` become `parameters[0].items`."""
        owner, _, project = slug.partition("/")
        self._tools[slug] = {
            "id": str(abs(hash(slug)) % 100000),
            "slugowner": owner,
            "slugproject": project,
            "title": title or project,
            "description": description,
            # A string is sent as it is: Wiro has been seen to send a JSON string here.
            "categories": categories if isinstance(categories, str) else list(categories),
            "parameters": [{"title": "Inputs", "items": items}],
        }

    # -- pricing: Tool/Detail's dynamicprice and approximatelycost ----------------------------

    def set_pricing(
        self,
        slug: str,
        dynamicprice: list[dict[str, Any]] | str | None = None,
        approximatelycost: str | None = None,
    ) -> None:
        """What Tool/Detail says of `slug`'s price: `dynamicprice` (a list, or the JSON string
        Wiro may send; None: none) and `approximatelycost` (None: none)."""
        self._pricing[slug] = {
            "dynamicprice": dynamicprice,
            "approximatelycost": approximatelycost,
        }

    def _pricing_of(self, slug: str) -> dict[str, Any]:
        return self._pricing.get(slug, default_pricing())

    # -----------------------------------------------------------------------------------------

    def outputs_of(self, task_id: str) -> list[dict[str, str]]:
        """The outputs Task/Detail shows for a finished successful task."""
        return self._outputs(self.tasks[task_id])

    def active_tasks(self) -> int:
        """Tasks that count against the concurrency limit (created, not terminal)."""
        now = time.monotonic()
        done = {tid for tid in self._active if self.tasks[tid]._status_at(now) in TERMINAL_STATUSES}
        self._active -= done
        return len(self._active)

    # -- plumbing -----------------------------------------------------------------------------

    def _take_fault(self, endpoint: str) -> tuple[str, float | None] | None:
        self.calls[endpoint] += 1
        queue = self._faults[endpoint]
        if queue:
            return queue.popleft()
        return self._always.get(endpoint)

    def _envelope(self, code: int, message: str, status: int = 200) -> web.Response:
        if self.always_200 and status not in (429, 500, 502):
            status = 200
        return web.json_response(
            {"result": False, "errors": [{"code": code, "message": message}]}, status=status
        )

    def _fault_response(self, fault: str, retry_after: float | None) -> web.StreamResponse:
        if fault == "http500":
            return web.json_response(
                {"result": False, "errors": [{"code": 0, "message": "Internal server error"}]},
                status=500,
            )
        if fault == "http502":
            return web.Response(
                status=502,
                text="<html><head><title>502 Bad Gateway</title></head>"
                "<body><center><h1>502 Bad Gateway</h1></center></body></html>",
                content_type="text/html",
            )
        if fault == "http429":
            headers = {}
            if retry_after is not None:
                headers["Retry-After"] = (
                    str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
                )
            return web.json_response(
                {"result": False, "errors": [{"code": 0, "message": "Too many requests"}]},
                status=429,
                headers=headers,
            )
        if fault == "garbage":
            return web.Response(
                text="<html><body>Service temporarily in maintenance</body></html>",
                content_type="text/html",
            )
        if fault == "http401":
            return self._envelope(0, AUTH_NOT_VALID, 401)
        if fault == "http401ip":
            return self._envelope(0, AUTH_IP_NOT_ALLOWED, 401)
        if fault == "code96":
            return self._envelope(96, CONCURRENCY_MESSAGE)
        if fault == "code97":
            return self._envelope(97, BALANCE_MESSAGE)
        raise AssertionError(fault)

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response()

    def _check_auth(self, request: web.Request) -> web.Response | None:
        """None if the request's headers authenticate it, else Wiro's 401 answer."""
        headers = request.headers
        if headers.get("x-api-key") != self.api_key:
            return self._auth_failure(AUTH_NOT_FOUND)
        if self.api_secret is None:
            return None
        nonce_text = headers.get("x-nonce")
        signature = headers.get("x-signature")
        if not nonce_text or not signature:
            return self._auth_failure(AUTH_NEEDS_SIGNATURE)
        if signature != sign(self.api_key, self.api_secret, nonce_text):
            return self._auth_failure(AUTH_NOT_VALID)
        try:
            nonce = int(nonce_text)
        except ValueError:
            return self._auth_failure(AUTH_NOT_VALID)
        if nonce in self._seen_nonces or nonce <= self._max_nonce - self.nonce_window_ms:
            return self._auth_failure(AUTH_NOT_VALID)
        self._seen_nonces.add(nonce)
        self._max_nonce = max(self._max_nonce, nonce)
        self.nonces.append(nonce)
        if len(self._seen_nonces) > 50_000:
            floor = self._max_nonce - self.nonce_window_ms
            self._seen_nonces = {n for n in self._seen_nonces if n > floor}
        return None

    def _auth_failure(self, message: str) -> web.Response:
        self.auth_failures[message] += 1
        return self._envelope(0, message, 401)

    @staticmethod
    async def _body(request: web.Request) -> tuple[dict[str, Any] | None, str]:
        """The request's fields (JSON, multipart or urlencoded) and which encoding it was."""
        raw = await request.read()
        ctype = request.content_type
        try:
            if raw.lstrip().startswith(b"{"):
                # Also under a multipart header: the seeds' curl examples send JSON that way.
                data = json.loads(raw)
                return (data if isinstance(data, dict) else None), "json"
            if ctype.startswith("multipart/"):
                header = f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n"
                message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    header.encode() + raw
                )
                fields: dict[str, Any] = {}
                for part in message.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if isinstance(name, str):
                        payload = part.get_payload(decode=True)
                        fields[name] = (
                            payload.decode() if isinstance(payload, bytes) else str(payload)
                        )
                return fields, "multipart"
            if ctype == "application/x-www-form-urlencoded":
                return dict(parse_qsl(raw.decode())), "form"
            if not raw.strip():
                return {}, "json"
            data = json.loads(raw)
            return (data if isinstance(data, dict) else None), "json"
        except (ValueError, UnicodeDecodeError):
            return None, "json"

    @staticmethod
    def _invalid_inputs(body: Mapping[str, Any]) -> str | None:
        """Light validation of a Run's inputs: Wiro's message, or None."""
        prompt = body.get("prompt")
        if prompt is None or not str(prompt).strip():
            return "prompt is required"
        if "samples" in body:
            try:
                samples = int(float(str(body["samples"])))
            except ValueError:
                return "samples must be a number"
            if not 1 <= samples <= 4:
                return "samples must be between 1 and 4"
        for name in ("steps", "width", "height", "scale"):
            if name in body and str(body[name]).strip():
                try:
                    float(str(body[name]))
                except ValueError:
                    return f"{name} must be a number"
        return None

    def _new_task(self, slug: str, inputs: dict[str, Any]) -> FakeTask:
        now = time.monotonic()
        outcome = self._outcomes.popleft() if self._outcomes else "success"
        images = 1
        if self.images_per_sample:
            try:
                images = max(1, int(float(str(inputs.get("samples", 1)))))
            except ValueError:
                images = 1
        task = FakeTask(
            id=str(self._next_id),
            token="".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(30)),
            slug=slug,
            inputs=inputs,
            outcome=outcome,
            created_at=now,
            created_unix=time.time(),
            queue_seconds=self.queue_seconds,
            run_seconds=self.run_seconds,
            images=images,
        )
        if not self._held:
            task._walk_from = now
        task.hidden_for = self.hide_new_tasks
        task.stop_cost = self.stop_cost
        self._next_id += 1
        self.tasks[task.id] = task
        self._by_token[task.token] = task
        self._active.add(task.id)
        return task

    def _find_task(self, body: Mapping[str, Any]) -> FakeTask | None:
        task_id = body.get("taskid")
        if task_id is not None and str(task_id) in self.tasks:
            return self.tasks[str(task_id)]
        for key in ("tasktoken", "socketaccesstoken"):
            token = body.get(key)
            if token is not None and str(token) in self._by_token:
                return self._by_token[str(token)]
        return None

    def _outputs(self, task: FakeTask) -> list[dict[str, str]]:
        seed = task.inputs.get("seed", "")
        outputs = []
        for index in range(task.images):
            content = png_bytes(colour_for(seed, index))
            digest = hashlib.md5(f"{task.id}:{index}".encode()).hexdigest()
            outputs.append(
                {
                    "id": digest,
                    "name": f"{index}.png",
                    "contenttype": "image/png",
                    "parentid": digest[::-1],
                    "uuid": task.uuid,
                    "size": str(len(content)),
                    "addedtime": str(int(task.created_unix)),
                    "modifiedtime": str(int(task.created_unix)),
                    "accesskey": task.token,
                    "url": f"{self.cdn_url}/{task.id}/{index}.png",
                }
            )
        return outputs

    def _task_json(self, task: FakeTask) -> dict[str, Any]:
        now = time.monotonic()
        status = task._status_at(now)

        def unix(mono: float | None) -> str:
            return "0" if mono is None else str(int(task.created_unix + (mono - task.created_at)))

        stamps = {name: unix(task._reached(s, now)) for s, name in _TIMESTAMP_FIELDS.items()}
        started = task._reached(TaskStatus.START, now)
        finished = task.finished_at
        elapsed = 0.0 if started is None else (finished or now) - started
        outputs: list[dict[str, str]] = []
        pexit, debugerror, debugoutput, cost = "", "", "", "0"
        if status is TaskStatus.CANCEL:
            pexit = ""
            cost = f"{task.stop_cost:.12f}"
        elif status is TaskStatus.ERROR:
            debugerror = TASK_ERROR_MESSAGE
            if task.outcome == "task_error":
                # The final reading (Wiro's MCP client): it ended, and says when.
                stamps["endtime"] = unix(task.finished_at)
        elif task.outcome == "failed":
            if status is TaskStatus.POSTPROCESS_END:
                pexit, debugerror = "1", FAILED_TRACEBACK
                debugoutput = "Loading pipeline components...\n"
        elif status in _OUTPUTS_FROM:
            outputs = self._outputs(task)
            if status is TaskStatus.POSTPROCESS_END:
                pexit = "0"
                cost = f"{Decimal(str(COST_PER_IMAGE)) * task.images:.12f}"
                debugoutput = "Loading pipeline components...\n100%|##########| done\n"
        return {
            "id": task.id,
            "uuid": task.uuid,
            "socketaccesstoken": task.token,
            "parameters": task.inputs,
            "debugoutput": debugoutput or _progress_bar(task, status),
            "debugerror": debugerror,
            "pexit": pexit,
            "elapsedseconds": f"{elapsed:.4f}",
            "status": status.value,
            "createtime": unix(task.created_at),
            "canceltime": unix(task._marks.get(TaskStatus.CANCEL)),
            **stamps,
            "outputs": outputs,
            "size": str(sum(int(o["size"]) for o in outputs)),
            "totalcost": cost,
            "modeldescription": task.slug,
        }

    # -- handlers -----------------------------------------------------------------------------

    async def _handle_run(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault("run")
        if fault is not None and fault[0] == "drop_unseen":
            return self._drop(request)  # lost before Wiro saw it: no task
        if fault is not None and fault[0] != "drop":
            return self._fault_response(*fault)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        body, encoding = await self._body(request)
        slug = f"{request.match_info['owner']}/{request.match_info['project']}"
        if body is None:
            self.runs.append(RunCall(slug, {}, None, 0, encoding))
            return self._envelope(0, "Request body is not valid JSON or form data")
        if self.models is not None and slug not in self.models:
            self.runs.append(RunCall(slug, body, None, 1, encoding))
            return self._envelope(1, "Tool not found")
        problem = self._invalid_inputs(body)
        if problem is not None:
            self.runs.append(RunCall(slug, body, None, 0, encoding))
            return self._envelope(0, problem)
        if self.concurrency_limit is not None and self.active_tasks() >= self.concurrency_limit:
            self.runs.append(RunCall(slug, body, None, 96, encoding))
            return self._envelope(96, CONCURRENCY_MESSAGE)
        task = self._new_task(slug, body)
        self.runs.append(RunCall(slug, body, task.id, None, encoding))
        if fault is not None:
            return self._drop(request)
        return web.json_response(
            {"errors": [], "taskid": task.id, "socketaccesstoken": task.token, "result": True}
        )

    async def _handle_detail(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault("detail")
        if fault is not None:
            return self._drop(request) if fault[0] == "drop" else self._fault_response(*fault)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        body, _ = await self._body(request)
        task = self._find_task(body or {})
        if task is None:
            return self._envelope(1, "Task not found")
        self.detail_calls[task.id] += 1
        if task.hidden_for > 0:
            task.hidden_for -= 1
            return self._envelope(1, NO_TASK_YET)
        return web.json_response(
            {"total": "1", "errors": [], "tasklist": [self._task_json(task)], "result": True}
        )

    async def _handle_stop(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        fault = self._take_fault(endpoint)
        if fault is not None and fault[0] not in ("drop", "drop_unseen"):
            return self._fault_response(*fault)
        if fault is not None and fault[0] == "drop_unseen":
            return self._drop(request)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        body, _ = await self._body(request)
        task = self._find_task(body or {})
        if task is None:
            return self._envelope(1, "Task not found")
        now = time.monotonic()
        status = task._status_at(now)
        if endpoint == "cancel":
            allowed = status in WAITING_STATUSES
        else:
            allowed = status not in WAITING_STATUSES and (
                status not in TERMINAL_STATUSES or task.finished_at is None
            )
        if not allowed:
            return self._envelope(0, CANNOT_CANCEL if endpoint == "cancel" else CANNOT_KILL)
        task._stop(TaskStatus.CANCEL, now)
        task.stopped_by = endpoint
        if fault is not None:
            return self._drop(request)
        return web.json_response(
            {"total": "1", "errors": [], "tasklist": [self._task_json(task)], "result": True}
        )

    async def _handle_cancel(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_stop(request, "cancel")

    async def _handle_kill(self, request: web.Request) -> web.StreamResponse:
        return await self._handle_stop(request, "kill")

    async def _handle_tool_detail(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault("tool_detail")
        if fault is not None:
            return self._drop(request) if fault[0] == "drop" else self._fault_response(*fault)
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        body, _ = await self._body(request)
        body = body or {}
        slug = f"{body.get('slugowner', '')}/{body.get('slugproject', '')}"
        if slug not in self._tools:
            if self.models is not None and slug not in self.models:
                return self._envelope(1, "Tool not found")
            self.add_tool(slug, default_tool_items())
        tool = {**self._tools[slug], **self._pricing_of(slug)}
        return web.json_response({"result": True, "errors": [], "tool": [tool]})

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        fault = self._take_fault("cdn")
        if fault is not None:
            return self._drop(request) if fault[0] == "drop" else self._fault_response(*fault)
        if any(h.lower() in ("x-api-key", "x-nonce", "x-signature") for h in request.headers):
            self.cdn_requests_with_credentials += 1
        path = request.match_info["path"]
        if path in self._files:
            content, content_type, chunked = self._files[path]
            if not chunked:
                return web.Response(body=content, headers={"Content-Type": content_type})
            stream = web.StreamResponse(headers={"Content-Type": content_type})
            stream.enable_chunked_encoding()
            await stream.prepare(request)
            try:
                for offset in range(0, len(content), 16 * 1024):
                    await stream.write(content[offset : offset + 16 * 1024])
                await stream.write_eof()
            except ConnectionResetError:
                pass  # the client stopped reading (e.g. over its size cap)
            return stream
        task_id, _, name = path.partition("/")
        task = self.tasks.get(task_id)
        index_text = name.removesuffix(".png")
        if (
            task is None
            or task.outcome in ("cdn404", "failed")
            or not index_text.isdigit()
            or int(index_text) >= task.images
            or task.status not in _OUTPUTS_FROM
        ):
            raise web.HTTPNotFound()
        content = png_bytes(colour_for(task.inputs.get("seed", ""), int(index_text)))
        return web.Response(body=content, content_type="image/png")


# -- pricing: Tool/Detail's dynamicprice and approximatelycost ---------------------------------


def default_pricing() -> dict[str, Any]:
    """Tool/Detail's price of every model unless `set_pricing` says otherwise: `cpo` at
    COST_PER_IMAGE (what a success costs), approximatelycost APPROXIMATE_COST."""
    return {
        "dynamicprice": [{"inputs": {}, "price": COST_PER_IMAGE, "priceMethod": "cpo"}],
        "approximatelycost": APPROXIMATE_COST,
    }


def default_tool_items() -> list[dict[str, Any]]:
    """Tool/Detail inputs of a generic text-to-image model, as Wiro lists them."""
    return [
        {
            "id": "prompt",
            "type": "textarea",
            "label": "prompt",
            "required": True,
            "default": "",
            "note": "prompt-help",
        },
        {
            "id": "samples",
            "type": "range",
            "label": "numberofoutputs",
            "required": False,
            "default": "1",
            "min": "1",
            "max": "4",
            "step": "1",
        },
        {
            "id": "steps",
            "type": "range",
            "label": "inferencesteps",
            "default": "24",
            "min": "1",
            "max": "100",
            "step": "1",
        },
        {
            "id": "scale",
            "type": "range",
            "label": "guidancescale",
            "default": "3.5",
            "min": "0",
            "max": "20",
            "step": "0.1",
        },
        {"id": "seed", "type": "text", "label": "seed", "default": "123456"},
        {
            "id": "width",
            "type": "select",
            "label": "width",
            "default": "1024",
            "options": [{"value": "512", "label": "512"}, {"value": "1024", "label": "1024"}],
        },
        {
            "id": "height",
            "type": "select",
            "label": "height",
            "default": "1024",
            "options": [{"value": "512", "label": "512"}, {"value": "1024", "label": "1024"}],
        },
    ]


# -- The socket ---------------------------------------------------------------------------------
#
# Wiro's WebSocket as shared/wiro-api.md describes it: the client sends
# {"type": "task_info", "tasktoken": ...}; the server then sends one message per life-cycle
# status, {"type", "id", "tasktoken", "message", "result"}, as the task reaches it, task_output
# lines while it works (progress as a progressGenerate object, the same object as a JSON string
# with string numbers, "Step n/N" lines and a tqdm bar), task_error lines (stderr warnings, not
# failures), and ends with task_postprocess_end (its message the outputs array; empty when the
# task failed) or task_cancel. One connection may register several tasks; each message names its
# task by `tasktoken`.

SOCKET_FAULTS = frozenset({"refuse", "drop", "stall", "garble", "mute"})

#: The statuses a socket announces, in order (task_error is not among them: it is a line).
_SOCKET_ORDER = (TaskStatus.QUEUE, *WORKING)
#: A stderr line many models print while working normally.
STDERR_WARNING = "UserWarning: the default value of `upcast_attention` will change"
GARBAGE_FRAME = "<html><body>502 Bad Gateway</body></html>"


def progress_lines(total_steps: int = 20) -> list[tuple[str, Any]]:
    """The (type, message) lines a working task writes, in order: every shape of progress."""
    quarter, half, three = total_steps // 4, total_steps // 2, 3 * total_steps // 4
    as_string = json.dumps(
        {
            "type": "progressGenerate",
            "percentage": "25",
            "stepCurrent": str(quarter),
            "stepTotal": str(total_steps),
            "speed": "1.84",
            "speedType": "it/s",
            "elapsedTime": "00:03",
            "remainingTime": "00:09",
        }
    )
    return [
        ("task_output", "Loading pipeline components..."),
        ("task_output", as_string),
        ("task_error", STDERR_WARNING),
        (
            "task_output",
            {
                "type": "progressGenerate",
                "percentage": 50,
                "stepCurrent": half,
                "stepTotal": total_steps,
                "speed": 1.9,
                "speedType": "it/s",
                "elapsedTime": "00:06",
                "remainingTime": "00:06",
            },
        ),
        ("task_output", f"Step {three}/{total_steps}"),
        ("task_output", f"100%|##########| {total_steps}/{total_steps}"),
    ]


class SocketSide:
    """The stand-in's WebSocket endpoint, with faults and counters.

    `fail_next(fault, times=1)` spoils the next connections: "refuse" (HTTP 503 instead of the
    upgrade), "drop" (the connection is cut after the first message), "stall" (silence after
    the first message, the connection left open), "garble" (a frame that is not JSON after the
    first message, then the task's messages as usual), "mute" (registered, then not a word:
    what a socket that does not replay the past would do for a task that already ended).
    """

    #: Longest sleep between two looks at a task (hand-driven tasks change at any time).
    tick = 0.02

    def __init__(self, wiro: WiroStandIn) -> None:
        self._wiro = wiro
        self._faults: collections.deque[str] = collections.deque()
        #: Connections accepted (upgraded), refused, open now, and most open at once.
        self.connections = 0
        self.refused = 0
        self.open = 0
        self.peak_open = 0
        #: Registrations (task_info) per task id.
        self.registrations: collections.Counter[str] = collections.Counter()
        #: Task ids whose ending message was sent, in order.
        self.ended: list[str] = []
        #: Progress lines set by hand (`report_progress`) sent, per task id.
        self.progress_sent: collections.Counter[str] = collections.Counter()

    def fail_next(self, fault: str, *, times: int = 1) -> None:
        if fault not in SOCKET_FAULTS:
            raise ValueError(f"unknown socket fault {fault!r}; one of {sorted(SOCKET_FAULTS)}")
        self._faults.extend([fault] * times)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._faults.popleft() if self._faults else None
        if fault == "refuse":
            self.refused += 1
            raise web.HTTPServiceUnavailable()
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        streams: list[asyncio.Task[None]] = []
        try:
            async for frame in ws:
                if frame.type is not web.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                except ValueError:
                    continue
                if not isinstance(data, dict) or data.get("type") != "task_info":
                    continue
                task = self._wiro._by_token.get(str(data.get("tasktoken", "")))
                if task is None:
                    await ws.send_json(
                        {
                            "type": "task_info",
                            "id": "",
                            "tasktoken": data.get("tasktoken"),
                            "message": "Task not found",
                            "result": False,
                        }
                    )
                    continue
                self.registrations[task.id] += 1
                streams.append(asyncio.create_task(self._stream(ws, request, task, fault)))
                fault = None
        finally:
            for stream in streams:
                stream.cancel()
            await asyncio.gather(*streams, return_exceptions=True)
            self.open -= 1
        return ws

    async def _stream(
        self, ws: web.WebSocketResponse, request: web.Request, task: FakeTask, fault: str | None
    ) -> None:
        if fault == "mute":
            return  # registered, never a word: as if the task had ended before it
        lines = progress_lines(_steps(task))
        sent_index = -1  # in _SOCKET_ORDER
        sent_lines = 0
        reported: int | None = None
        try:
            while True:
                now = time.monotonic()
                status = task._status_at(now)
                if status in _SOCKET_ORDER:
                    index = _SOCKET_ORDER.index(status)
                else:  # terminal: announce every working status it passed first
                    index = (
                        len(_SOCKET_ORDER) - 1
                        if status is TaskStatus.POSTPROCESS_END
                        else (
                            _SOCKET_ORDER.index(WORKING[_ERROR_AFTER])
                            if status is TaskStatus.ERROR
                            else sent_index
                        )
                    )
                while sent_index < index:
                    sent_index += 1
                    await self._send(ws, task, _SOCKET_ORDER[sent_index].value, "")
                    if sent_index == 0 and fault is not None:
                        await self._spoil(ws, request, fault)
                        if fault in ("drop", "stall"):
                            return
                    walking = self._output_phase(task) is not None
                    if _SOCKET_ORDER[sent_index] is TaskStatus.OUTPUT_FULL and walking:
                        # Any progress lines not sent yet come before output_full.
                        for kind, message in lines[sent_lines:]:
                            await self._send(ws, task, kind, message)
                        sent_lines = len(lines)
                if sent_index >= 0 and _SOCKET_ORDER[sent_index] is TaskStatus.OUTPUT:
                    due = self._lines_due(task, now, len(lines))
                    for kind, message in lines[sent_lines:due]:
                        await self._send(ws, task, kind, message)
                    sent_lines = max(sent_lines, due)
                if task.progress is not None and task.progress != reported and sent_index >= 0:
                    # Progress set by hand (report_progress) is printed as a tqdm bar.
                    reported = task.progress
                    await self._send(ws, task, "task_output", _progress_bar(task, status).strip())
                    self.progress_sent[task.id] += 1
                if status in TERMINAL_STATUSES:
                    await self._end(ws, task, status)
                    return
                await asyncio.sleep(self._sleep(task, now, sent_index, sent_lines, len(lines)))
        except (ConnectionResetError, RuntimeError):
            return  # the client went away

    async def _end(self, ws: web.WebSocketResponse, task: FakeTask, status: TaskStatus) -> None:
        if status is TaskStatus.CANCEL:
            await self._send(ws, task, TaskStatus.CANCEL.value, "")
        else:
            if status is TaskStatus.ERROR:
                await self._send(ws, task, "task_error", TASK_ERROR_MESSAGE)
            elif task.outcome == "failed":
                for line in FAILED_TRACEBACK.splitlines():
                    await self._send(ws, task, "task_error", line)
            outputs = self._wiro._outputs(task) if task.succeeded else []
            await self._send(ws, task, TaskStatus.POSTPROCESS_END.value, outputs)
        self.ended.append(task.id)

    async def _spoil(self, ws: web.WebSocketResponse, request: web.Request, fault: str) -> None:
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()
        elif fault == "stall":
            pass  # say nothing more; the connection stays open until the client leaves
        elif fault == "garble":
            await ws.send_str(GARBAGE_FRAME)

    @staticmethod
    async def _send(ws: web.WebSocketResponse, task: FakeTask, kind: str, message: Any) -> None:
        # orjson, straight to a text frame: json.dumps and aiohttp's str round trip were a
        # fifth of the stand-in's work in the engine benchmark.
        frame = {
            "type": kind,
            "id": task.id,
            "tasktoken": task.token,
            "message": message,
            "result": True,
        }
        await ws.send_frame(orjson.dumps(frame), web.WSMsgType.TEXT)

    @staticmethod
    def _output_phase(task: FakeTask) -> tuple[float, float] | None:
        """When the clock-driven walk is in task_output (start, length), if it is walking."""
        if task._walk_from is None or task._pinned is not None:
            return None
        step = task.run_seconds / len(WORKING)
        start = task._walk_from + task.queue_seconds + WORKING.index(TaskStatus.OUTPUT) * step
        return start, step

    def _lines_due(self, task: FakeTask, now: float, count: int) -> int:
        phase = self._output_phase(task)
        if phase is None:
            return 0  # moved by hand: only progress set by hand is told
        start, length = phase
        return min(count, int((now - start) / (length / (count + 1))) + 1)

    def _sleep(
        self, task: FakeTask, now: float, sent_index: int, sent_lines: int, count: int
    ) -> float:
        """Until the next thing to tell, at most `tick` for tasks moved by hand."""
        if task._walk_from is None or task._pinned is not None or task._final is not None:
            return self.tick
        step = task.run_seconds / len(WORKING)
        start = task._walk_from + task.queue_seconds
        times = [start + i * step for i in range(len(WORKING))]
        end = task._walk_end()
        if end is not None:
            times.append(end)
        phase = self._output_phase(task)
        if phase is not None and sent_lines < count:
            times.append(phase[0] + sent_lines * phase[1] / (count + 1))
        upcoming = [t for t in times if t > now]
        # Stopped by hand (cancel, kill) at any moment: look at least twice a second.
        return max(0.0, min([*upcoming, now + 0.5]) - now) + 0.001


def _steps(task: FakeTask) -> int:
    try:
        return max(1, int(float(str(task.inputs.get("steps", 20)))))
    except ValueError:
        return 20
