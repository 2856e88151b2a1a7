"""The stand-in itself: others' tests and benchmarks rely on how it walks tasks."""

from __future__ import annotations

import asyncio

import pytest

from bot.wiro import TaskStatus, WiroClient
from tests.wiro_standin import WORKING, WiroStandIn


async def test_a_task_walks_every_status_in_order(wiro: WiroStandIn) -> None:
    wiro.queue_seconds = 1.0
    wiro.run_seconds = 9.0
    task = wiro._new_task("a/b", {"prompt": "x"})
    t0 = task.created_at
    seen = [task._status_at(t0 + offset + 0.5) for offset in range(11)]
    assert seen == [TaskStatus.QUEUE, *WORKING, TaskStatus.POSTPROCESS_END]
    assert task._reached(TaskStatus.START, t0 + 100) == pytest.approx(t0 + 1 + 4)
    assert task._reached(TaskStatus.START, t0 + 2) is None


@pytest.mark.parametrize(
    ("outcome", "last"),
    [
        ("stuck", TaskStatus.START),
        ("task_error", TaskStatus.ERROR),
        ("failed", TaskStatus.POSTPROCESS_END),
    ],
)
async def test_outcomes_end_where_they_should(
    wiro: WiroStandIn, outcome: str, last: TaskStatus
) -> None:
    wiro.next_outcome(outcome)
    task = wiro._new_task("a/b", {"prompt": "x"})
    assert task._status_at(task.created_at + 3600) is last


async def test_finished_at_is_when_it_ended(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    run = await wiro_client.run("a/b", {"prompt": "x"})
    task = wiro.tasks[run.taskid]
    assert task.finished_at is None
    await asyncio.sleep(wiro.run_seconds + 0.01)
    assert task.is_terminal
    assert task.finished_at == pytest.approx(task.created_at + wiro.run_seconds)


async def test_release_starts_held_tasks(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    held = await wiro_client.run("a/b", {"prompt": "x"})
    pinned = await wiro_client.run("a/b", {"prompt": "y"})
    wiro.advance(pinned.taskid, TaskStatus.ASSIGN)
    wiro.release()
    later = await wiro_client.run("a/b", {"prompt": "z"})
    for task_id in (held.taskid, later.taskid):
        assert wiro.tasks[task_id]._walk_from is not None
    assert wiro.tasks[pinned.taskid].status is TaskStatus.ASSIGN


async def test_outputs_show_only_at_the_end(wiro: WiroStandIn, wiro_client: WiroClient) -> None:
    wiro.hold()
    run = await wiro_client.run("a/b", {"prompt": "x"})
    wiro.advance(run.taskid, TaskStatus.OUTPUT)
    assert (await wiro_client.task_detail(task_id=run.taskid)).outputs == []
    wiro.advance(run.taskid, TaskStatus.OUTPUT_FULL)
    assert len((await wiro_client.task_detail(task_id=run.taskid)).outputs) == 1


def test_bad_controls_are_refused() -> None:
    wiro = WiroStandIn()
    with pytest.raises(ValueError):
        wiro.fail_next("nope", "http500")
    with pytest.raises(ValueError):
        wiro.fail_next("run", "nope")
    with pytest.raises(ValueError):
        wiro.next_outcome("nope")
