"""A job's record and its states; shared by the engine and the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from bot.wiro.types import TaskProgress


class JobState(StrEnum):
    CREATED = "created"  # stored, not yet admitted
    WAITING = "waiting"  # queued locally for a free slot (ours or Wiro's)
    SUBMITTED = "submitted"  # Run sent; Wiro's answer not yet stored
    QUEUED = "queued"  # Wiro has the task and has not started it
    RUNNING = "running"  # a Wiro worker is generating
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @property
    def is_local(self) -> bool:
        """Not yet sent to Wiro: cancelling needs no Wiro call."""
        return self in (JobState.CREATED, JobState.WAITING)


FINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT}
)


class ErrorKind(StrEnum):
    """Why a job did not succeed, for the layer that words it for people."""

    TASK_FAILED = "task_failed"  # the model ran and failed at Wiro
    INSUFFICIENT_BALANCE = "insufficient_balance"
    AUTH = "auth"
    REJECTED = "rejected"  # Wiro refused the inputs
    UNAVAILABLE = "unavailable"  # Wiro unreachable or erroring
    LOST = "lost"  # the Run answer was lost: not resent, to avoid paying twice
    DOWNLOAD = "download"  # the images could not be fetched
    DEADLINE = "deadline"
    CANCELLED_AT_WIRO = "cancelled_at_wiro"


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked and where. All None for the command line."""

    user_id: int | None = None
    guild_id: int | None = None
    channel_id: int | None = None
    source: str = "discord"


@dataclass(frozen=True, slots=True)
class Output:
    position: int
    name: str
    content_type: str
    size: int
    url: str
    path: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(slots=True)
class Job:
    id: int
    model: str
    prompt: str
    inputs: dict[str, Any]
    seed: int
    status: JobState
    requester: Requester
    created_at: float
    wiro_status: str | None = None
    task_id: str | None = None
    task_token: str | None = None
    cancel_requested: bool = False
    submitted_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    elapsed_seconds: float | None = None
    #: What Wiro charged, exact (None: it never reached Wiro or has not ended).
    cost: Decimal | None = None
    error: str | None = None
    error_kind: ErrorKind | None = None
    status_message_id: int | None = None
    interaction_token: str | None = None
    interaction_at: float | None = None
    result_message_id: int | None = None
    posted_at: float | None = None
    #: When retention removed the job's images from disk (None: still there, or none).
    outputs_expired_at: float | None = None
    outputs: list[Output] = field(default_factory=list)
    #: The price foreseen at submission (None: unknown).
    estimate: Decimal | None = None
    #: Generation progress while running, when Wiro tells it (not stored).
    progress: TaskProgress | None = None
    #: Why a waiting job is not sent yet, in one line for people (not stored).
    waiting_for: str | None = None

    def copy(self) -> Job:
        """A copy to hand out (events, readers): its outputs list is its own. Written out
        rather than `dataclasses.replace`, which costs six times as much, and the engine
        copies a job for every event it announces."""
        return Job(
            self.id,
            self.model,
            self.prompt,
            self.inputs,
            self.seed,
            self.status,
            self.requester,
            self.created_at,
            self.wiro_status,
            self.task_id,
            self.task_token,
            self.cancel_requested,
            self.submitted_at,
            self.started_at,
            self.finished_at,
            self.elapsed_seconds,
            self.cost,
            self.error,
            self.error_kind,
            self.status_message_id,
            self.interaction_token,
            self.interaction_at,
            self.result_message_id,
            self.posted_at,
            self.outputs_expired_at,
            list(self.outputs),
            self.estimate,
            self.progress,
            self.waiting_for,
        )

    @property
    def user_id(self) -> int | None:
        return self.requester.user_id

    @property
    def guild_id(self) -> int | None:
        return self.requester.guild_id

    @property
    def channel_id(self) -> int | None:
        return self.requester.channel_id
