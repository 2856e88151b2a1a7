"""Following one Wiro task over Wiro's WebSocket (see shared/wiro-api.md, "WebSocket").

After Run, a client connects to `wss://socket.wiro.ai/v1`, registers the task with
`{"type": "task_info", "tasktoken": <socketaccesstoken>}` and reads life-cycle messages until
`task_postprocess_end` or `task_cancel`. The socket does not carry `pexit` or the cost: the
caller asks Task/Detail once at the end.

Wiro's docs and its SDKs show one connection per task, and nothing says a connection may carry
several; so `WiroSocket.follow` opens one connection per task (aiohttp holds a thousand of them
easily), and ignores frames that name another task.

The socket is a help, never a dependency: a refused connection, a drop before the end, a
silence longer than `idle_timeout` or a frame that is not Wiro's JSON all raise `SocketLost`,
and the caller polls instead. After such a failure new connections wait a back-off (1 s
doubling to `backoff_max`, with jitter); `available` says whether one may be tried now.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

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


@dataclass(frozen=True, slots=True)
class SocketMessage:
    """One frame from Wiro's socket: `{"type", "id", "tasktoken", "message", "result"}`."""

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
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise SocketLost("Wiro's socket sent a frame that is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str) or not data["type"]:
        raise SocketLost("Wiro's socket sent a frame without a message type")
    return SocketMessage(
        type=data["type"],
        task_id=_text(data.get("id")),
        token=_text(data.get("tasktoken")),
        message=data.get("message"),
        result=data.get("result") not in (False, "false", 0, "0"),
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
#: Asked once when the socket stays quiet: True if the task has ended after all.
OnQuiet = Callable[[], Awaitable[bool]]


class WiroSocket:
    """Wiro's WebSocket, one connection per followed task, with a shared back-off.

    Owns an aiohttp session of its own (without a connection limit: each followed task holds
    one connection for its whole life); `close()` closes it.
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
        self._session: aiohttp.ClientSession | None = None
        self._failures = 0
        self._last_failure = float("-inf")
        self._retry_at = 0.0
        #: Connections open now (for benchmarks and tests).
        self.open_connections = 0
        #: Close handshakes still under way (`close()` waits for them).
        self._closing: set[asyncio.Task[bool]] = set()

    def __repr__(self) -> str:
        return f"WiroSocket({self.url!r})"

    @property
    def available(self) -> bool:
        """False while backing off after a failure: poll instead."""
        return time.monotonic() >= self._retry_at

    @property
    def retry_in(self) -> float:
        return max(0.0, self._retry_at - time.monotonic())

    async def close(self) -> None:
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=self.connect_timeout)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def follow(
        self,
        token: str,
        on_message: OnMessage,
        *,
        on_quiet: OnQuiet | None = None,
        quiet_after: float | None = None,
    ) -> SocketMessage | None:
        """Register `token` and pass its messages to `on_message` until the task ends;
        return the ending message (task_postprocess_end or task_cancel). Raises SocketLost.

        Whether Wiro replays what a task did before it was registered is not documented: a
        task that ended in the meantime may get no message at all. So after `quiet_after`
        seconds without a word, `on_quiet` is asked once (it can look at Task/Detail); if it
        answers True the task is over and None is returned."""
        attempt = time.monotonic()
        try:
            return await self._follow(token, on_message, on_quiet, quiet_after)
        except SocketLost as exc:
            self._failed(attempt, exc)
            raise

    async def _follow(
        self,
        token: str,
        on_message: OnMessage,
        on_quiet: OnQuiet | None,
        quiet_after: float | None,
    ) -> SocketMessage | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            async with asyncio.timeout(self.connect_timeout):
                ws = await self._session.ws_connect(self.url, autoping=True, max_msg_size=0)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SocketLost(f"could not open Wiro's socket ({type(exc).__name__})") from None
        self.open_connections += 1
        try:
            await ws.send_str(json.dumps({"type": "task_info", "tasktoken": token}))
            self._failures = 0
            # First a shorter silence asks `on_quiet` once; after that, `idle_timeout` is lost.
            quiet = (
                on_quiet is not None and quiet_after is not None and quiet_after < self.idle_timeout
            )
            while True:
                limit = quiet_after if quiet and quiet_after is not None else self.idle_timeout
                try:
                    return await self._read(ws, token, on_message, limit)
                except TimeoutError:
                    if not quiet:
                        raise SocketLost(
                            f"Wiro's socket said nothing for {self.idle_timeout:g} s"
                        ) from None
                quiet = False
                assert on_quiet is not None
                if await on_quiet():
                    return None
        except (aiohttp.ClientError, OSError) as exc:
            raise SocketLost(f"Wiro's socket failed ({type(exc).__name__})") from None
        finally:
            self.open_connections -= 1
            # The close handshake waits on Wiro: it must not hold up the job's result.
            closing = asyncio.create_task(ws.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _read(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        token: str,
        on_message: OnMessage,
        silence: float,
    ) -> SocketMessage:
        """Messages until the task's end; TimeoutError after `silence` seconds without one.

        One watchdog per connection rather than a timeout per frame: a thousand tasks'
        progress lines would otherwise each cost a timer set and cancelled."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as timeout:
            watchdog = _Watchdog(loop, timeout, silence)
            try:
                while True:
                    watchdog.since = loop.time()
                    watchdog.waiting = True
                    frame = await ws.receive()
                    watchdog.waiting = False
                    if frame.type is aiohttp.WSMsgType.TEXT:
                        message = parse_message(frame.data)
                    elif frame.type is aiohttp.WSMsgType.BINARY:
                        continue  # realtime models stream audio this way; nothing for us
                    else:
                        raise SocketLost("Wiro's socket closed before the task ended")
                    if message.token and message.token != token:
                        continue
                    await on_message(message)
                    if message.ends:
                        return message
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


class _Watchdog:
    """Expires `timeout` once the connection has been `waiting` for a message for `silence`
    seconds (`since` then); never while a message is being handled. It looks when the wait
    could first have lasted that long, and again later if a message came meanwhile."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: asyncio.Timeout, silence: float):
        self.since = loop.time()
        self.waiting = False
        self._loop = loop
        self._timeout = timeout
        self._silence = silence
        self._handle = loop.call_at(self.since + silence, self._look)

    def _look(self) -> None:
        now = self._loop.time()
        due = (self.since if self.waiting else now) + self._silence
        if now >= due:
            self._timeout.reschedule(now)  # expire now: the wait raises TimeoutError
        else:
            self._handle = self._loop.call_at(due, self._look)

    def stop(self) -> None:
        self._handle.cancel()
