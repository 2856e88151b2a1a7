"""The file writer's helper process (see `bot.jobs.file_writer.ProcessFileWriter`).

Run as `python -I -S file_writer_child.py`: the standard library only, nothing of `bot`.

It reads requests on stdin, each a header `struct.pack("!IIQ", request_id, path_length,
data_length)`, the path (file system bytes), then the data; writes the file (created or
truncated, mode 0o644); and answers `struct.pack("!II", request_id, errno)` on stdout, 0 when
the file was written. Answers are sent whenever it is about to wait for more input, so a
burst is answered in few writes. At the end of stdin it exits 0.

SIGINT is ignored: Ctrl+C in a terminal reaches the whole process group, and the parent
decides when its helper stops (by closing stdin).
"""

from __future__ import annotations

import errno
import io
import os
import signal
import struct
import sys

REQUEST = struct.Struct("!IIQ")
ANSWER = struct.Struct("!II")
FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
#: Input is read up to this much at a time (a larger request gets a buffer its size).
CHUNK = 256 * 1024


class Pipes:
    """Exact-length pieces of stdin, read in chunks into one buffer, and the answers, sent
    before every wait for input. Unbuffered file objects both ways: this class keeps the
    buffers, so it knows when it is about to wait."""

    def __init__(self, source: io.FileIO, out: io.FileIO) -> None:
        self._source = source
        self._out = out
        # Never resized in place (a view handed out may still exist): replaced when too small.
        self._buffer = bytearray(CHUNK)
        self._start = 0
        self._end = 0
        self.answers = bytearray()

    def at_end(self) -> bool:
        """Whether the input has ended (between two requests)."""
        return self._end == self._start and not self._fill(1)

    def take(self, size: int) -> memoryview:
        """The next `size` bytes, valid until the next call; EOFError when the input ends
        before them."""
        if self._end - self._start < size and not self._fill(size):
            raise EOFError("the input ended inside a request")
        view = memoryview(self._buffer)[self._start : self._start + size]
        self._start += size
        return view

    def send_answers(self) -> None:
        with memoryview(self.answers) as view:
            sent = 0
            while sent < len(view):
                sent += self._out.write(view[sent:]) or 0
        del self.answers[:]

    def _fill(self, size: int) -> bool:
        available = self._end - self._start
        if size > len(self._buffer):
            bigger = bytearray(size)
            bigger[:available] = self._buffer[self._start : self._end]
            self._buffer = bigger
            self._start, self._end = 0, available
        elif self._start + size > len(self._buffer):
            self._buffer[:available] = self._buffer[self._start : self._end]  # same length
            self._start, self._end = 0, available
        while self._end - self._start < size:
            self.send_answers()  # the parent gets every answer there is before this waits
            with memoryview(self._buffer) as buffer, buffer[self._end :] as free:
                count = self._source.readinto(free)
            if not count:
                return False
            self._end += count
        return True


def write_file(path: bytes, data: memoryview) -> int:
    """Write `data` to `path`: 0, or the errno that stopped it."""
    try:
        fd = os.open(path, FLAGS, 0o644)
    except OSError as exc:
        return exc.errno or errno.EIO
    except ValueError:  # a NUL byte in the path
        return errno.EINVAL
    error = 0
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:
        error = exc.errno or errno.EIO
    finally:
        try:
            os.close(fd)
        except OSError as exc:
            error = error or exc.errno or errno.EIO
    return error


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pipes = Pipes(
        io.FileIO(sys.stdin.fileno(), "rb", closefd=False),
        io.FileIO(sys.stdout.fileno(), "wb", closefd=False),
    )
    try:
        while not pipes.at_end():
            request_id, path_length, data_length = REQUEST.unpack(pipes.take(REQUEST.size))
            path = bytes(pipes.take(path_length))
            error = write_file(path, pipes.take(data_length))
            pipes.answers += ANSWER.pack(request_id, error)
        pipes.send_answers()
    except (BrokenPipeError, EOFError):
        return 1  # the parent went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
