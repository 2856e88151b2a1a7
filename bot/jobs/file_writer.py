"""Writing a finished job's images to disk, beside the event loop's work.

Under a burst (a thousand jobs finishing a second) creating each small file on the event loop
costs 200-300 µs of kernel time (ext4 inode creation under load), a third of the loop's work
per finished job; and a writer *thread* does not help: it retakes the interpreter lock after
every system call, waiting up to the 5 ms switch interval each time while the loop is busy.

- `ThreadFileWriter`: small files at once on the loop, larger ones on one thread.
- `ProcessFileWriter`: every file through a small helper process (`file_writer_child.py`), fed
  through a pipe: one non-blocking pipe write per file on the loop, the file system work on
  another core, no interpreter lock. When the helper is unavailable it writes as
  `ThreadFileWriter` does, so no file is lost and no job fails because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

#: A job's files up to this size are written on the event loop, larger ones on the thread.
#: Writing a few hundred KB into the page cache takes tens of microseconds; in a thread it
#: waits for the interpreter lock at every system call, up to 5 ms each while the loop is
#: busy: with a thousand jobs ending a second, results waited seconds in that thread's queue.
#: Large files go to the thread, where the copying runs beside the loop.
INLINE_WRITE_BYTES = 256 * 1024

#: The helper process's script: standard library only, run with `python -I -S`.
CHILD_SCRIPT = str(Path(__file__).resolve().with_name("file_writer_child.py"))

_REQUEST = struct.Struct("!IIQ")  # request id, path length, data length; then path, data
_ANSWER = struct.Struct("!II")  # request id, errno (0: written)
_READ_SIZE = 64 * 1024


class FileWriter(Protocol):
    async def write(self, files: Sequence[tuple[Path, bytes]]) -> None:
        """Write each file (created or truncated); return once all are fully written. Raises
        OSError, as `Path.write_bytes` would, when one cannot be written (which of the others
        were written then depends on the writer)."""
        ...

    async def close(self) -> None:
        """Finish what was given and let go of threads and processes. Idempotent; `write`
        raises RuntimeError afterwards."""
        ...


class ThreadFileWriter:
    """A job's files written at once on the event loop when they are small together (see
    `INLINE_WRITE_BYTES`), else on a single thread: a pool of threads all doing file system
    calls at once starves the event loop of the interpreter lock. Files are written in order;
    the first that fails stops the call."""

    def __init__(self) -> None:
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="wirobot-files")
        self._closed = False

    async def write(self, files: Sequence[tuple[Path, bytes]]) -> None:
        if self._closed:
            raise RuntimeError("the file writer is closed")
        if sum(len(content) for _, content in files) <= INLINE_WRITE_BYTES:
            _write_all(files)
        else:
            await asyncio.get_running_loop().run_in_executor(self._thread, _write_all, files)

    async def close(self) -> None:
        self._closed = True
        self._thread.shutdown(wait=True)  # at most one job's files in hand


def _write_all(files: Sequence[tuple[Path, bytes]]) -> None:
    # No temporary file and rename: a file is only referenced once the job's row says so, and
    # an interrupted job downloads again; every system call counts when a thousand jobs end.
    for path, content in files:
        path.write_bytes(content)


@dataclass(slots=True)
class _Request:
    path: Path
    data: bytes
    #: None once written, the OSError that stopped it otherwise.
    done: asyncio.Future[OSError | None]


@dataclass(slots=True, eq=False)
class _Child:
    process: asyncio.subprocess.Process
    stdin: asyncio.StreamWriter
    stdout: asyncio.StreamReader
    pending: dict[int, _Request] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None
    #: False once it is lost or closing: nothing more is sent to it.
    alive: bool = True
    #: Closed by us (close()): its end is expected, not worth a warning.
    closing: bool = False


class ProcessFileWriter:
    """Files written by a helper process, started on first use.

    Each file is one request on the helper's stdin, all of a call's files in parallel;
    one task reads the answers in bulk and settles each request. When one of a call's files
    cannot be written, the others are still written and `write` raises that file's OSError
    (the first in the call's order) once all are done.

    When the helper cannot start, dies or its pipe breaks, every request it had not answered
    and every later write goes to a `ThreadFileWriter` (a request it may have half-written is
    simply written again, truncating), one warning is logged, and a new helper is tried only
    `restart_pause` seconds later, not at every write.

    `close()` closes the helper's stdin (it writes what it has, then exits), waits for it up
    to `close_timeout` seconds, kills it past that, always reaps it, writes any request still
    unanswered in this process, then closes the fallback. It is idempotent. `write` raises
    RuntimeError once `close()` has begun (the engine closes its writer after its last job).
    """

    def __init__(
        self,
        *,
        executable: str = sys.executable,
        restart_pause: float = 30.0,
        close_timeout: float = 5.0,
    ) -> None:
        self._executable = executable
        self.restart_pause = restart_pause
        self.close_timeout = close_timeout
        self._fallback = ThreadFileWriter()
        self._child: _Child | None = None
        self._starting: asyncio.Task[_Child | None] | None = None
        self._retry_at = float("-inf")  # loop time before which no helper is started
        self._next_id = 0
        self._failovers: set[asyncio.Task[None]] = set()
        #: Helpers not yet reaped (the one serving, and lost ones being reaped).
        self._helpers: set[_Child] = set()
        self._closing: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        """The helper's process id while it serves (None before it starts, while it is down,
        and after close)."""
        child = self._child
        return child.process.pid if child is not None and child.alive else None

    @property
    def pending(self) -> int:
        """Files handed to the helper and not yet answered."""
        child = self._child
        return len(child.pending) if child is not None else 0

    async def write(self, files: Sequence[tuple[Path, bytes]]) -> None:
        if self._closing is not None:
            raise RuntimeError("the file writer is closed")
        if not files:
            return
        child = await self._serving_child()
        if self._closing is not None:
            raise RuntimeError("the file writer is closed")
        if child is None:
            await self._fallback.write(files)
            return
        results: list[asyncio.Future[OSError | None]] = []
        for path, data in files:
            results.append(self._send(child, path, data))
            if child.alive and not child.closing:
                try:
                    await child.stdin.drain()  # at once below the pipe's high-water mark
                except (BrokenPipeError, ConnectionResetError) as exc:
                    self._lose(child, f"its pipe broke: {exc}")
        errors = await asyncio.gather(*results)
        for error in errors:
            if error is not None:
                raise error

    async def close(self) -> None:
        if self._closing is None:
            self._closing = asyncio.create_task(self._close(), name="wirobot-file-writer-close")
        # Shielded: a cancelled close() still finishes, and the helper is still reaped.
        await asyncio.shield(self._closing)

    # -- the helper ----------------------------------------------------------------------------

    async def _serving_child(self) -> _Child | None:
        """The helper, started if need be; None while it cannot serve."""
        child = self._child
        if child is not None and child.alive:
            return child
        if asyncio.get_running_loop().time() < self._retry_at:
            return None
        if self._starting is None:
            self._starting = asyncio.create_task(self._start(), name="wirobot-file-writer-start")
        # Shared by every write waiting for it, and finished even if this one is cancelled.
        return await asyncio.shield(self._starting)

    async def _start(self) -> _Child | None:
        try:
            process = await asyncio.create_subprocess_exec(
                self._executable,
                "-I",
                "-S",
                CHILD_SCRIPT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            self._retry_at = asyncio.get_running_loop().time() + self.restart_pause
            log.warning(
                "file writer process could not start (%s); images are written in this "
                "process, a helper is tried again in %g s",
                exc,
                self.restart_pause,
            )
            return None
        finally:
            self._starting = None
        assert process.stdin is not None and process.stdout is not None
        child = _Child(process, process.stdin, process.stdout)
        child.reader = asyncio.create_task(
            self._read_answers(child), name="wirobot-file-writer-answers"
        )
        self._helpers.add(child)
        self._child = child
        return child

    def _send(self, child: _Child, path: Path, data: bytes) -> asyncio.Future[OSError | None]:
        done: asyncio.Future[OSError | None] = asyncio.get_running_loop().create_future()
        request = _Request(path, data, done)
        if child.alive and child.stdin.is_closing():
            self._lose(child, "its pipe closed")
        if not child.alive or child.closing:
            self._fail_over([request])
            return done
        request_id = self._next_id
        self._next_id = (request_id + 1) & 0xFFFFFFFF
        child.pending[request_id] = request
        # Absolute: the helper's working folder is the one this process had when it started.
        encoded = os.fsencode(os.path.abspath(path))
        child.stdin.writelines((_REQUEST.pack(request_id, len(encoded), len(data)), encoded, data))
        return done

    async def _read_answers(self, child: _Child) -> None:
        """Settle requests as their answers come, in bulk; at the end of the helper's output,
        fail its unanswered requests over and reap it."""
        rest = b""
        with contextlib.suppress(OSError):
            while chunk := await child.stdout.read(_READ_SIZE):
                data = rest + chunk if rest else chunk
                whole = len(data) - len(data) % _ANSWER.size
                for request_id, error in _ANSWER.iter_unpack(data[:whole]):
                    request = child.pending.pop(request_id, None)
                    if request is None or request.done.done():  # its write was cancelled
                        continue
                    request.done.set_result(
                        OSError(error, os.strerror(error), str(request.path)) if error else None
                    )
                rest = data[whole:]
        self._lose(child, "its output ended", ended=True)
        await child.process.wait()  # no zombie
        self._helpers.discard(child)

    def _lose(self, child: _Child, reason: str, *, ended: bool = False) -> None:
        """The helper serves no more: its unanswered requests are written in this process,
        and so is every file until `restart_pause` has passed. While it is closing only the
        end of its output (`ended`) counts: until then it is answering what it was sent."""
        if not child.alive or (child.closing and not ended):
            return
        child.alive = False
        if self._child is child:
            self._child = None
        if not child.closing:
            self._retry_at = asyncio.get_running_loop().time() + self.restart_pause
            log.warning(
                "file writer process %s lost (%s); images are written in this process until "
                "a new helper starts, in %g s",
                child.process.pid,
                reason,
                self.restart_pause,
            )
        requests = list(child.pending.values())
        child.pending.clear()
        self._fail_over(requests)
        child.stdin.close()
        if child.process.returncode is None and not child.closing:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()

    def _fail_over(self, requests: list[_Request]) -> None:
        if requests:
            task = asyncio.create_task(self._write_here(requests), name="wirobot-file-failover")
            self._failovers.add(task)
            task.add_done_callback(self._failovers.discard)

    async def _write_here(self, requests: list[_Request]) -> None:
        for request in requests:
            if request.done.done():  # its write was cancelled
                continue
            result: OSError | None = None
            try:
                await self._fallback.write([(request.path, request.data)])
            except OSError as exc:
                result = exc
            except Exception as exc:  # the fallback closed: told to that write
                if not request.done.done():
                    request.done.set_exception(exc)
                continue
            if not request.done.done():
                request.done.set_result(result)
            await asyncio.sleep(0)  # a burst of them does not hold the loop

    async def _close(self) -> None:
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        child = self._child
        if child is not None:
            child.closing = True
            child.stdin.close()  # the helper writes what it has, then exits
        helpers = list(self._helpers)  # and any lost one still being reaped
        readers = [helper.reader for helper in helpers if helper.reader is not None]
        if readers:
            await asyncio.wait(readers, timeout=self.close_timeout)
        for helper in helpers:
            if helper.reader is not None and not helper.reader.done():
                log.warning(
                    "file writer process %s did not stop within %g s; killed",
                    helper.process.pid,
                    self.close_timeout,
                )
                with contextlib.suppress(ProcessLookupError):
                    helper.process.kill()
        # Each reader fails over what its helper had not answered, then reaps it.
        await asyncio.gather(*readers, return_exceptions=True)
        self._child = None
        while self._failovers:
            await asyncio.gather(*self._failovers, return_exceptions=True)
        await self._fallback.close()
