"""The bot writes images through a helper process, off the event loop; when the helper cannot
start, dies or is killed, every file is still written, in this process."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.jobs.file_writer import ProcessFileWriter

LOGGER = "bot.jobs.file_writer"


@pytest.fixture
async def writer() -> AsyncIterator[ProcessFileWriter]:
    writer = ProcessFileWriter(restart_pause=0.0)
    yield writer
    await writer.close()


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    return lambda: [r.getMessage() for r in caplog.records if r.name == LOGGER]


def files_in(folder: Path, count: int, size: int = 3000) -> list[tuple[Path, bytes]]:
    """`count` files to write in `folder` (made), each its own bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    return [(folder / f"{n}.png", os.urandom(size + n)) for n in range(count)]


def assert_on_disk(files: list[tuple[Path, bytes]]) -> None:
    for path, data in files:
        assert path.read_bytes() == data, path


def gone(pid: int) -> bool:
    """The process has ended and been reaped (a zombie still answers signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - the writer has no event for its pipe
            await asyncio.sleep(0)


async def started(writer: ProcessFileWriter, folder: Path) -> int:
    """The helper's pid, once it has answered a first file."""
    await writer.write([(folder / "first.png", b"first")])
    assert writer.pid is not None
    return writer.pid


async def test_files_are_on_disk_with_their_bytes_when_write_returns(
    writer: ProcessFileWriter, tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    assert writer.pid is None  # started on first use
    small = [(tmp_path / "small.png", b"\x89PNG tiny")]
    await writer.write(small)
    assert_on_disk(small)
    pid = writer.pid
    assert pid is not None and pid != os.getpid()

    several = [*files_in(tmp_path, 4), (tmp_path / "large.png", os.urandom(1_000_000))]
    await writer.write(several)
    assert_on_disk(several)
    mask = os.umask(0o22)
    os.umask(mask)
    assert (tmp_path / "large.png").stat().st_mode & 0o777 == 0o644 & ~mask
    assert writer.pid == pid and writer.pending == 0
    assert warnings() == []


async def test_a_file_written_again_is_replaced_whole(
    writer: ProcessFileWriter, tmp_path: Path
) -> None:
    path = tmp_path / "again.png"
    await writer.write([(path, b"a long first version")])
    await writer.write([(path, b"short")])
    assert path.read_bytes() == b"short"


async def test_a_burst_of_jobs_is_written_by_one_helper(
    writer: ProcessFileWriter, tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    pid = await started(writer, tmp_path)
    jobs = [files_in(tmp_path / str(n), 2, size=1000 + n) for n in range(250)]
    await asyncio.gather(*(writer.write(files) for files in jobs))
    for files in jobs:
        assert_on_disk(files)
    assert writer.pid == pid and writer.pending == 0
    assert warnings() == []


async def test_a_file_that_cannot_be_written_fails_alone(
    writer: ProcessFileWriter, tmp_path: Path
) -> None:
    fine = files_in(tmp_path, 2)
    nowhere = tmp_path / "no such folder" / "image.png"
    with pytest.raises(FileNotFoundError) as raised:
        await writer.write([fine[0], (nowhere, b"lost"), fine[1]])
    assert raised.value.errno == errno.ENOENT
    assert raised.value.filename == str(nowhere)
    assert_on_disk(fine)  # the others of the call were written all the same
    assert not nowhere.parent.exists()
    assert writer.pid is not None  # the helper goes on


async def test_a_helper_killed_with_files_in_hand_loses_none_and_is_replaced(
    writer: ProcessFileWriter, tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    pid = await started(writer, tmp_path)
    os.kill(pid, signal.SIGSTOP)  # it answers nothing while the files are sent
    files = [*files_in(tmp_path, 10), (tmp_path / "large.png", os.urandom(1_000_000))]
    writing = asyncio.create_task(writer.write(files))
    await until(lambda: writer.pending == len(files))
    os.kill(pid, signal.SIGKILL)
    await writing
    assert_on_disk(files)
    assert len(warnings()) == 1 and str(pid) in warnings()[0]

    # restart_pause=0: the next write starts a new helper.
    later = files_in(tmp_path / "later", 3)
    await writer.write(later)
    assert_on_disk(later)
    assert writer.pid not in (None, pid)
    await until(lambda: gone(pid))
    assert len(warnings()) == 1


async def test_a_helper_killed_between_writes_loses_nothing(
    writer: ProcessFileWriter, tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    pid = await started(writer, tmp_path)
    os.kill(pid, signal.SIGKILL)
    files = files_in(tmp_path, 5)
    await writer.write(files)
    assert_on_disk(files)
    assert len(warnings()) == 1
    await writer.write([(tmp_path / "next.png", b"next")])
    assert writer.pid not in (None, pid)


async def test_a_lost_helper_is_not_restarted_before_the_pause(
    tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    writer = ProcessFileWriter(restart_pause=3600.0)
    try:
        pid = await started(writer, tmp_path)
        os.kill(pid, signal.SIGKILL)
        for n in range(3):
            files = files_in(tmp_path / str(n), 2)
            await writer.write(files)
            assert_on_disk(files)
        assert writer.pid is None
        assert len(warnings()) == 1
    finally:
        await writer.close()
    assert gone(pid)


async def test_ctrl_c_in_the_terminal_does_not_stop_the_helper(
    writer: ProcessFileWriter, tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    pid = await started(writer, tmp_path)
    os.kill(pid, signal.SIGINT)  # pending before the helper reads the next file
    files = files_in(tmp_path, 2)
    await writer.write(files)
    assert_on_disk(files)
    assert writer.pid == pid
    assert warnings() == []


async def test_close_ends_the_helper_and_can_be_called_again(tmp_path: Path) -> None:
    writer = ProcessFileWriter()
    pid = await started(writer, tmp_path)
    await writer.close()
    assert gone(pid)
    assert writer.pid is None
    await writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        await writer.write([(tmp_path / "late.png", b"late")])
    assert not (tmp_path / "late.png").exists()


async def test_close_writes_what_the_helper_had_in_hand(tmp_path: Path) -> None:
    writer = ProcessFileWriter()
    pid = await started(writer, tmp_path)
    files = files_in(tmp_path, 20)
    writing = asyncio.create_task(writer.write(files))
    await until(lambda: writer.pending == len(files))
    await writer.close()  # the helper finishes what it was sent, then exits
    await writing
    assert_on_disk(files)
    assert gone(pid)


async def test_a_helper_that_will_not_stop_is_killed_at_close_and_its_files_written(
    tmp_path: Path,
) -> None:
    writer = ProcessFileWriter(close_timeout=0.2)
    pid = await started(writer, tmp_path)
    os.kill(pid, signal.SIGSTOP)
    files = files_in(tmp_path, 5)
    writing = asyncio.create_task(writer.write(files))
    await until(lambda: writer.pending == len(files))
    await writer.close()
    await writing
    assert_on_disk(files)
    assert gone(pid)


async def test_a_helper_that_cannot_start_fails_no_write(
    tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    writer = ProcessFileWriter(executable=str(tmp_path / "no-python"), restart_pause=3600.0)
    try:
        small = files_in(tmp_path, 3)
        large = [(tmp_path / "large.png", os.urandom(1_000_000))]
        await writer.write(small)
        await writer.write(large)
        assert_on_disk(small + large)
        assert writer.pid is None
        assert len(warnings()) == 1 and "could not start" in warnings()[0]
    finally:
        await writer.close()


async def test_a_helper_that_exits_at_once_fails_no_write(
    tmp_path: Path, warnings: Callable[[], list[str]]
) -> None:
    # `true` starts, reads nothing and exits 0.
    writer = ProcessFileWriter(executable="true", restart_pause=3600.0)
    try:
        files = files_in(tmp_path, 3)
        await writer.write(files)
        assert_on_disk(files)
        assert len(warnings()) == 1
    finally:
        await writer.close()
