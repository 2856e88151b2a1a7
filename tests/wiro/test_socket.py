"""Wiro's WebSocket: what the client makes of each message, and how it fails."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator

import pytest

from bot.wiro import WiroClient
from bot.wiro.socket import SocketLost, SocketMessage, WiroSocket, parse_message, parse_progress
from bot.wiro.types import TaskProgress, TaskStatus
from tests.wiro_standin import STDERR_WARNING, WiroStandIn


@pytest.fixture
async def socket(wiro: WiroStandIn) -> AsyncIterator[WiroSocket]:
    client = WiroSocket(wiro.socket_url, idle_timeout=2.0, rng=random.Random(1))
    yield client
    await client.close()


async def follow(socket: WiroSocket, token: str) -> list[SocketMessage]:
    seen: list[SocketMessage] = []

    async def keep(message: SocketMessage) -> None:
        seen.append(message)

    async with asyncio.timeout(5):
        await socket.follow(token, keep)
    return seen


# -- progress in every shape Wiro sends it --------------------------------------------------------


def test_a_progress_object_gives_fraction_steps_and_time_left() -> None:
    progress = parse_progress(
        {
            "type": "progressGenerate",
            "percentage": 45,
            "stepCurrent": 9,
            "stepTotal": 20,
            "remainingTime": "00:12",
        }
    )
    assert progress == TaskProgress(0.45, 9, 20, 12.0)


def test_the_same_object_as_a_json_string_with_string_numbers_reads_the_same() -> None:
    text = json.dumps(
        {"type": "progressGenerate", "percentage": "45", "stepCurrent": "9", "stepTotal": "20"}
    )
    assert parse_progress(text) == TaskProgress(0.45, 9, 20)


def test_printed_steps_and_tqdm_bars_are_progress_too() -> None:
    assert parse_progress("Step 12/30") == TaskProgress(0.4, 12, 30)
    assert parse_progress(" 45%|####5     | 9/20 [00:04<00:05]") == TaskProgress(0.45, 9, 20)


def test_lines_without_progress_and_odd_objects_are_no_progress() -> None:
    assert parse_progress("Loading pipeline components...") is None
    assert parse_progress({"type": "progressGenerate", "percentage": "n/a"}) is None
    assert parse_progress("{not json") is None
    assert parse_progress(None) is None
    assert parse_progress({"type": "progressGenerate", "stepCurrent": 5, "stepTotal": 10}) == (
        TaskProgress(0.5, 5, 10)
    )


def test_a_frame_that_is_not_wiros_json_is_refused() -> None:
    for frame in ("<html>502</html>", "[1, 2]", '{"message": "no type"}', ""):
        with pytest.raises(SocketLost):
            parse_message(frame)


def test_task_error_on_the_socket_is_a_line_not_a_status() -> None:
    line = parse_message('{"type": "task_error", "id": "1", "tasktoken": "t", "message": "warn"}')
    assert line.status is None and not line.ends
    start = parse_message('{"type": "task_start", "id": "1", "tasktoken": "t", "message": ""}')
    assert start.status is TaskStatus.START


# -- following a task at the stand-in -------------------------------------------------------------


async def test_a_task_is_followed_from_the_queue_to_its_outputs(
    wiro: WiroStandIn, wiro_client: WiroClient, socket: WiroSocket
) -> None:
    wiro.run_seconds = 0.3
    run = await wiro_client.run("owner/model", {"prompt": "a cat", "steps": 20})
    seen = await follow(socket, run.socketaccesstoken)

    types = [m.type for m in seen]
    assert types[0] == "task_queue"
    assert types[-1] == "task_postprocess_end"
    assert types.index("task_start") < types.index("task_output") < types.index("task_end")
    progress = [m.progress for m in seen if m.progress is not None]
    assert TaskProgress(0.25, 5, 20, 9.0) in progress  # the JSON string, numbers as strings
    assert TaskProgress(0.5, 10, 20, 6.0) in progress  # the object
    assert TaskProgress(0.75, 15, 20) in progress  # "Step 15/20"
    stderr = [m for m in seen if m.type == "task_error"]
    assert [m.message for m in stderr] == [STDERR_WARNING]
    assert [o.url for o in seen[-1].outputs] == [o["url"] for o in wiro.outputs_of(run.taskid)]
    assert all(m.task_id == run.taskid and m.token == run.socketaccesstoken for m in seen)


async def test_a_failed_task_ends_with_no_outputs_and_its_traceback_as_lines(
    wiro: WiroStandIn, wiro_client: WiroClient, socket: WiroSocket
) -> None:
    wiro.next_outcome("failed")
    run = await wiro_client.run("owner/model", {"prompt": "a cat"})
    seen = await follow(socket, run.socketaccesstoken)
    assert seen[-1].type == "task_postprocess_end" and seen[-1].outputs == []
    assert any("CUDA out of memory" in str(m.message) for m in seen if m.type == "task_error")


async def test_a_killed_task_ends_with_task_cancel(
    wiro: WiroStandIn, wiro_client: WiroClient, socket: WiroSocket
) -> None:
    wiro.hold()
    run = await wiro_client.run("owner/model", {"prompt": "a cat"})
    wiro.advance(run.taskid, TaskStatus.START)
    following = asyncio.create_task(follow(socket, run.socketaccesstoken))
    await asyncio.sleep(0.1)
    await wiro_client.kill_task(run.taskid)
    seen = await following
    assert seen[-1].type == "task_cancel"
    assert TaskStatus.START in [m.status for m in seen]


# -- failures: each one raises SocketLost, and new connections back off ----------------------------


@pytest.mark.parametrize("fault", ["refuse", "drop", "garble"])
async def test_a_refused_dropped_or_garbled_socket_is_lost_and_backs_off(
    wiro: WiroStandIn, wiro_client: WiroClient, socket: WiroSocket, fault: str
) -> None:
    wiro.run_seconds = 0.3
    wiro.socket.fail_next(fault)
    run = await wiro_client.run("owner/model", {"prompt": "a cat"})
    assert socket.available
    with pytest.raises(SocketLost):
        await follow(socket, run.socketaccesstoken)
    assert not socket.available
    assert 0.5 < socket.retry_in <= 1.2


async def test_a_silent_socket_is_lost_after_the_idle_timeout(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    socket = WiroSocket(wiro.socket_url, idle_timeout=0.2)
    wiro.socket.fail_next("stall")
    run = await wiro_client.run("owner/model", {"prompt": "a cat"})
    try:
        with pytest.raises(SocketLost, match="said nothing"):
            await follow(socket, run.socketaccesstoken)
    finally:
        await socket.close()


async def test_time_spent_handling_a_message_is_not_silence(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    # The idle timeout counts only waiting for Wiro: a handler slowed by a busy database is
    # never cut off halfway through a message.
    socket = WiroSocket(wiro.socket_url, idle_timeout=0.2)
    wiro.run_seconds = 0.3
    run = await wiro_client.run("owner/model", {"prompt": "a cat"})
    seen: list[str] = []

    async def slow(message: SocketMessage) -> None:
        if not seen:
            await asyncio.sleep(0.5)
        seen.append(message.type)

    try:
        async with asyncio.timeout(5):
            end = await socket.follow(run.socketaccesstoken, slow)
    finally:
        await socket.close()
    assert end is not None and end.type == "task_postprocess_end"
    assert seen[0] == "task_queue" and seen[-1] == "task_postprocess_end"


async def test_many_connections_failing_together_count_as_one_failure(
    wiro: WiroStandIn, wiro_client: WiroClient, socket: WiroSocket
) -> None:
    wiro.socket.fail_next("refuse", times=20)
    runs = [await wiro_client.run("owner/model", {"prompt": f"cat {n}"}) for n in range(20)]
    results = await asyncio.gather(
        *(follow(socket, run.socketaccesstoken) for run in runs), return_exceptions=True
    )
    assert all(isinstance(r, SocketLost) for r in results)
    assert socket.retry_in <= 1.2  # the first step of the back-off, not 2**19 seconds


async def test_the_back_off_grows_with_each_outage_and_a_success_resets_it(
    wiro: WiroStandIn, wiro_client: WiroClient
) -> None:
    socket = WiroSocket(wiro.socket_url, backoff_base=0.01, rng=random.Random(2))
    try:
        waits = []
        for _ in range(3):
            wiro.socket.fail_next("refuse")
            run = await wiro_client.run("owner/model", {"prompt": "a cat"})
            with pytest.raises(SocketLost):
                await follow(socket, run.socketaccesstoken)
            waits.append(socket.retry_in)
            await asyncio.sleep(socket.retry_in)
        assert waits[0] < waits[1] < waits[2]
        run = await wiro_client.run("owner/model", {"prompt": "a cat"})
        await follow(socket, run.socketaccesstoken)
        wiro.socket.fail_next("refuse")
        run = await wiro_client.run("owner/model", {"prompt": "a cat"})
        with pytest.raises(SocketLost):
            await follow(socket, run.socketaccesstoken)
        assert socket.retry_in <= 0.012
    finally:
        await socket.close()


async def test_nothing_listens_at_the_socket_url(wiro_client: WiroClient) -> None:
    socket = WiroSocket("ws://127.0.0.1:9/socket", connect_timeout=1.0)
    try:
        with pytest.raises(SocketLost, match="could not open"):
            await follow(socket, "token")
    finally:
        await socket.close()
