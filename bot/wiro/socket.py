"""Following one Wiro task over Wiro's WebSocket (see shared/wiro-api.md, "WebSocket").

After Run, a client connects to `wss://socket.wiro.ai/v1`, registers the task with
`{"type": "task_info", "tasktoken": <socketaccesstoken>}` and reads life-cycle messages until
`task_postprocess_end` or `task_cancel`. The socket does not carry `pexit` or the cost: the
caller asks Task/Detail once at the end.

Wiro's docs and its SDKs show one connection per task, and nothing says a connection may carry
several; so `WiroSocket.follow` opens one connection per task, and ignores frames that name
another task.

The socket is a help, never a dependency: a refused connection, a drop before the end, a
silence longer than `idle_timeout` or a frame that is not Wiro's JSON all raise `SocketLost`,
and the caller polls instead. After such a failure new connections wait a back-off (1 s
doubling to `backoff_max`, with jitter); `available` says whether one may be tried now.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

import orjson
import picows

from bot.wiro.exceptions import WiroError
from bot.wiro.types import TaskOutput, TaskProgress, TaskStatus, progress_in_text

log = logging.getLogger(__name__)

DEFAULT_SOCKET_URL = "wss://socket.wiro.ai/v1"

#: Socket messages after which Wiro sends nothing more for the task.
ENDING_TYPES = frozenset({TaskStatus.POSTPROCESS_END.value, TaskStatus.CANCEL.value})
#: Message types that are a line the model wrote (stdout or stderr), not a change of status.
#: `task_error` is a stderr line: many models write warnings there while working normally.
LINE_TYPES = frozenset({"task_output", "task_error", "task_output_full", "task_error_full"})


class SocketLost(WiroError):
    """The socket could not be used to follow a task to its end; poll instead."""

    retryable = True


class SocketMessage(NamedTuple):
    """One frame from Wiro's socket: `{"type", "id", "tasktoken", "message", "result"}`.
    (A tuple: made for every frame, and a frozen dataclass costs three times as much.)"""

    type: str
    task_id: str
    token: str
    message: Any
    result: bool

    @property
    def status(self) -> TaskStatus | None:
        """The life-cycle status this message announces; None for output and error lines
        (task_output is a status too, but it repeats: it says "running", see `progress`)."""
        if self.type in ("task_error", "task_error_full"):
            return None
        status = TaskStatus(self.type)
        return None if status is TaskStatus.UNKNOWN else status

    @property
    def ends(self) -> bool:
        return self.type in ENDING_TYPES

    @property
    def progress(self) -> TaskProgress | None:
        """Progress in a task_output: a progressGenerate object (or the same as a JSON
        string, numbers maybe as strings), or a printed line ("Step 12/30", a tqdm bar)."""
        if self.type != "task_output":
            return None
        return parse_progress(self.message)

    @property
    def outputs(self) -> list[TaskOutput]:
        """The outputs array of `task_postprocess_end` (Task/Detail remains the authority)."""
        if self.type != TaskStatus.POSTPROCESS_END.value or not isinstance(self.message, list):
            return []
        found = []
        for item in self.message:
            if isinstance(item, dict) and item.get("url"):
                try:
                    found.append(TaskOutput.model_validate(item))
                except ValueError:
                    continue
        return found


def parse_message(text: str | bytes) -> SocketMessage:
    """A frame as a SocketMessage; raises SocketLost for anything that is not Wiro's JSON."""
    try:
        data = orjson.loads(text)  # several times faster than json's, and every frame is one
    except ValueError:  # orjson.JSONDecodeError, also for text that is not UTF-8
        raise SocketLost("Wiro's socket sent a frame that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str) or not data["type"]:
        raise SocketLost("Wiro's socket sent a frame without a message type")
    get = data.get
    return SocketMessage(
        data["type"],
        _text(get("id")),
        _text(get("tasktoken")),
        get("message"),
        get("result") not in (False, "false", 0, "0"),
    )


def parse_progress(message: Any) -> TaskProgress | None:
    """A progressGenerate object, the same object as a JSON string, or a printed line."""
    if isinstance(message, str):
        stripped = message.strip()
        if stripped.startswith("{"):
            try:
                message = json.loads(stripped)
            except ValueError:
                return progress_in_text(message)
        else:
            return progress_in_text(message)
    if not isinstance(message, dict):
        return None
    step = _int(message.get("stepCurrent"))
    total = _int(message.get("stepTotal"))
    percent = _float(message.get("percentage"))
    if percent is None and step is not None and total:
        percent = 100 * step / total
    if percent is None:
        return None
    fraction = min(max(percent / 100, 0.0), 1.0)
    return TaskProgress(fraction, step, total or None, _seconds(message.get("remainingTime")))


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip().rstrip("%"))
    except ValueError:
        return None
    return number if number == number else None  # NaN is no number


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _seconds(value: Any) -> float | None:
    """ "12", "12.5", "00:12", "01:02:03" or "12s" as seconds."""
    if value is None:
        return None
    text = str(value).strip().removesuffix("s")
    if ":" in text:
        total = 0.0
        for part in text.split(":"):
            number = _float(part)
            if number is None:
                return None
            total = total * 60 + number
        return total
    number = _float(text)
    return number if number is not None and number >= 0 else None


OnMessage = Callable[[SocketMessage], Awaitable[None]]
#: Offered each message as it arrives, while none waits before it: True if it handled the
#: message (it must not block), which then skips `OnMessage`.
OnArrival = Callable[[SocketMessage], bool]
#: Asked once when the socket stays quiet: True if the task has ended after all.
OnQuiet = Callable[[], Awaitable[bool]]

#: Wiro's frames are small (a line, a status, the outputs' URLs); the buffer grows for the
#: rare large one. picows's default of 16 KB would be 80 MB for 5,000 tasks.
READ_BUFFER_BYTES = 2048
#: `task_output_full` repeats everything the model printed: allow a long log.
MAX_FRAME_BYTES = 64 * 2**20


class WiroSocket:
    """Wiro's WebSocket, one connection per followed task, with a shared back-off.

    Connections are picows's: frames are parsed in the transport's own callback as they
    arrive, and the follower is woken only to hand them on. With thousands of tasks each
    printing a line per step, a task switch and a library's message object per frame (as a
    general WebSocket client gives) were most of the engine's work.
    """

    def __init__(
        self,
        url: str = DEFAULT_SOCKET_URL,
        *,
        connect_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._failures = 0
        self._last_failure = float("-inf")
        self._retry_at = 0.0
        #: Connections open now.
        self._open: set[picows.WSTransport] = set()

    def __repr__(self) -> str:
        return f"WiroSocket({self.url!r})"

    @property
    def open_connections(self) -> int:
        """Connections open now (for benchmarks and tests)."""
        return len(self._open)

    @property
    def available(self) -> bool:
        """False while backing off after a failure: poll instead."""
        return time.monotonic() >= self._retry_at

    @property
    def retry_in(self) -> float:
        return max(0.0, self._retry_at - time.monotonic())

    async def close(self) -> None:
        """Close the connections still open (their followers see the socket lost)."""
        for transport in list(self._open):
            _hang_up(transport)
        self._open.clear()

    async def follow(
        self,
        token: str,
        on_message: OnMessage,
        *,
        on_arrival: OnArrival | None = None,
        on_quiet: OnQuiet | None = None,
        quiet_after: float | None = None,
    ) -> SocketMessage | None:
        """Register `token` and pass its messages to `on_message` until the task ends;
        return the ending message (task_postprocess_end or task_cancel). Raises SocketLost.

        `on_arrival` may take a message at once, in the transport's callback, when no other
        message waits before it: a progress line that only moves the progress needs no
        task switch, and a task prints one per step.

        Whether Wiro replays what a task did before it was registered is not documented: a
        task that ended in the meantime may get no message at all. So after `quiet_after`
        seconds without a word, `on_quiet` is asked once (it can look at Task/Detail); if it
        answers True the task is over and None is returned."""
        attempt = time.monotonic()
        try:
            return await self._follow(token, on_message, on_arrival, on_quiet, quiet_after)
        except SocketLost as exc:
            self._failed(attempt, exc)
            raise

    async def _follow(
        self,
        token: str,
        on_message: OnMessage,
        on_arrival: OnArrival | None,
        on_quiet: OnQuiet | None,
        quiet_after: float | None,
    ) -> SocketMessage | None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                transport, connection = await picows.ws_connect(
                    lambda: _Connection(token, loop, on_arrival),
                    self.url,
                    websocket_handshake_timeout=self.connect_timeout,
                    enable_auto_pong=True,
                    max_frame_size=MAX_FRAME_BYTES,
                    read_buffer_init_size=READ_BUFFER_BYTES,
                    logger_name=log,
                )
        except (picows.WSError, OSError, TimeoutError) as exc:
            raise SocketLost(f"could not open Wiro's socket ({type(exc).__name__})") from None
        assert isinstance(connection, _Connection)
        self._open.add(transport)
        try:
            register = {"type": "task_info", "tasktoken": token}
            transport.send(picows.WSMsgType.TEXT, json.dumps(register).encode())
            self._failures = 0
            # First a shorter silence asks `on_quiet` once; after that, `idle_timeout` is lost.
            quiet = (
                on_quiet is not None and quiet_after is not None and quiet_after < self.idle_timeout
            )
            while True:
                limit = quiet_after if quiet and quiet_after is not None else self.idle_timeout
                try:
                    return await self._read(connection, on_message, limit)
                except TimeoutError:
                    if not quiet:
                        raise SocketLost(
                            f"Wiro's socket said nothing for {self.idle_timeout:g} s"
                        ) from None
                quiet = False
                assert on_quiet is not None
                if await on_quiet():
                    return None
        except OSError as exc:
            raise SocketLost(f"Wiro's socket failed ({type(exc).__name__})") from None
        finally:
            self._open.discard(transport)
            _hang_up(transport)

    async def _read(
        self, connection: _Connection, on_message: OnMessage, silence: float
    ) -> SocketMessage:
        """Messages until the task's end; TimeoutError after `silence` seconds without one.

        One watchdog per connection rather than a timeout per wait: a thousand tasks'
        progress lines would otherwise each cost a timer set and cancelled."""
        loop = asyncio.get_running_loop()
        messages = connection.messages
        async with asyncio.timeout(None) as timeout:
            watchdog = _Watchdog(loop, timeout, silence, connection)
            try:
                while True:
                    while messages:
                        message = messages.popleft()
                        await on_message(message)
                        if message.ends:
                            return message
                    if connection.lost is not None:
                        raise connection.lost
                    watchdog.since = loop.time()
                    watchdog.waiting = True
                    await connection.arrival(loop)
                    watchdog.waiting = False
            finally:
                watchdog.stop()

    def _failed(self, attempt: float, exc: SocketLost) -> None:
        # Many connections fail together in one outage: count it once, not once per task.
        if attempt > self._last_failure:
            self._failures += 1
            self._last_failure = time.monotonic()
            pause = min(self.backoff_max, self.backoff_base * 2 ** (self._failures - 1))
            self._retry_at = self._last_failure + pause * self._rng.uniform(0.8, 1.2)
            log.warning(
                "Wiro's socket: %s; polling instead, socket retried in %.1f s",
                exc,
                self.retry_in,
            )


def _hang_up(transport: picows.WSTransport) -> None:
    """Say goodbye and close, without waiting on Wiro's answer: it must not hold up the
    job's result."""
    if transport.is_disconnected:
        return
    if not transport.is_close_frame_sent:
        transport.send_close(picows.WSCloseCode.OK)
    transport.disconnect()


class _Connection(picows.WSListener):
    """One task's connection. Frames are read in the transport's callback: the task's
    messages (others' are dropped) queue in `messages` until the follower takes them;
    `lost` says why the connection can no longer help."""

    def __init__(
        self, token: str, loop: asyncio.AbstractEventLoop, on_arrival: OnArrival | None
    ) -> None:
        self.token = token
        self.messages: collections.deque[SocketMessage] = collections.deque()
        self.lost: SocketLost | None = None
        #: Loop time of the last message of the task (taken at once or queued).
        self.heard_at = loop.time()
        self._loop = loop
        self._on_arrival = on_arrival
        self._waiter: asyncio.Future[None] | None = None
        #: A text message that came in fragments, so far; or None.
        self._parts: list[bytes] | None = None
        #: Inside a fragmented binary message (realtime models stream audio: nothing for us).
        self._skipping = False

    def arrival(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Done when a message or the loss arrives."""
        self._waiter = loop.create_future()
        return self._waiter

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind is _TEXT:
            if frame.fin:
                self._take(transport, frame.get_payload_as_bytes())
            else:
                self._parts = [frame.get_payload_as_bytes()]
        elif kind is _CONTINUATION:
            if self._parts is not None:
                self._parts.append(frame.get_payload_as_bytes())
                if frame.fin:
                    text, self._parts = b"".join(self._parts), None
                    self._take(transport, text)
            elif frame.fin:
                self._skipping = False
        elif kind is _BINARY:
            self._skipping = not frame.fin
        elif kind is _CLOSE:
            self._lose(SocketLost("Wiro's socket closed before the task ended"))
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self._lose(SocketLost("Wiro's socket closed before the task ended"))

    def _take(self, transport: picows.WSTransport, text: bytes) -> None:
        try:
            message = parse_message(text)
        except SocketLost as exc:
            self._lose(exc)
            transport.disconnect()
            return
        if message.token and message.token != self.token:
            return
        self.heard_at = self._loop.time()
        if not self.messages and self._on_arrival is not None and self._on_arrival(message):
            return
        self.messages.append(message)
        self._wake()

    def _lose(self, exc: SocketLost) -> None:
        if self.lost is None:
            self.lost = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


_TEXT = picows.WSMsgType.TEXT
_CONTINUATION = picows.WSMsgType.CONTINUATION
_BINARY = picows.WSMsgType.BINARY
_CLOSE = picows.WSMsgType.CLOSE


class _Watchdog:
    """Expires `timeout` once the connection has been `waiting` for a message for `silence`
    seconds (since `since` or the last message taken at once, whichever is later); never
    while a message is being handled. It looks when the wait could first have lasted that
    long, and again later if a message came meanwhile."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: asyncio.Timeout,
        silence: float,
        connection: _Connection,
    ):
        self.since = loop.time()
        self.waiting = False
        self._loop = loop
        self._timeout = timeout
        self._silence = silence
        self._connection = connection
        self._handle = loop.call_at(self.since + silence, self._look)

    def _look(self) -> None:
        now = self._loop.time()
        heard = max(self.since, self._connection.heard_at)
        due = (heard if self.waiting else now) + self._silence
        if now >= due:
            self._timeout.reschedule(now)  # expire now: the wait raises TimeoutError
        else:
            self._handle = self._loop.call_at(due, self._look)

    def stop(self) -> None:
        self._handle.cancel()
