"""A job handed out with an event is a copy: the engine's own record goes on changing."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from bot.jobs.job import ErrorKind, Job, JobState, Output, Requester
from bot.wiro.types import TaskProgress


def a_job_with_every_field_set() -> Job:
    values = {
        "id": 7,
        "model": "owner/model",
        "prompt": "a cat",
        "inputs": {"steps": 20},
        "seed": 42,
        "status": JobState.RUNNING,
        "requester": Requester(user_id=1, guild_id=2, channel_id=3),
        "created_at": 1.0,
        "wiro_status": "task_output",
        "task_id": "99",
        "task_token": "token",
        "cancel_requested": True,
        "submitted_at": 2.0,
        "started_at": 3.0,
        "finished_at": 4.0,
        "elapsed_seconds": 5.0,
        "cost": Decimal("0.01"),
        "error": "words",
        "error_kind": ErrorKind.TASK_FAILED,
        "status_message_id": 11,
        "interaction_token": "interaction",
        "interaction_at": 6.0,
        "result_message_id": 12,
        "posted_at": 7.0,
        "outputs_expired_at": 8.0,
        "outputs": [
            Output(
                position=0,
                name="7.png",
                content_type="image/png",
                size=3,
                url="https://cdn/7.png",
                path="/o/7.png",
                width=1,
                height=1,
            )
        ],
        "estimate": Decimal("0.02"),
        "progress": TaskProgress(0.5, 10, 20),
        "waiting_for": "a slot",
    }
    # Every field is set here: a field added to Job and forgotten in Job.copy fails below.
    assert set(values) == {f.name for f in dataclasses.fields(Job)}
    return Job(**values)


def test_a_copy_holds_every_field_of_the_job() -> None:
    job = a_job_with_every_field_set()
    assert job.copy() == job
    assert job.copy() == dataclasses.replace(job)


def test_a_copy_keeps_its_outputs_when_the_job_gains_more() -> None:
    job = a_job_with_every_field_set()
    copy = job.copy()
    job.outputs.append(job.outputs[0])
    job.status = JobState.SUCCEEDED
    assert len(copy.outputs) == 1
    assert copy.status is JobState.RUNNING
