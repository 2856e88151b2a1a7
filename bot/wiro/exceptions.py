"""The Wiro client's error tree.

A failed *request* (auth, limits, server trouble) and a failed *task* (the model ran and
failed) are different things, as in replicate-python: the first raise a `WiroAPIError` or
`WiroConnectionError`, the second `TaskFailed`. Messages are written for a person and never
contain credentials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.wiro.types import Task


class WiroError(Exception):
    """Anything that went wrong talking to Wiro."""

    #: Whether the same call may succeed if tried again later.
    retryable: bool = False


class WiroAPIError(WiroError):
    """Wiro answered, and the answer was an error."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return self.message


class AuthError(WiroAPIError):
    """The API key or signature was refused (HTTP 401/403, or codes 98/99)."""


class NotFound(WiroAPIError):
    """The model or task does not exist (code 1, HTTP 404)."""


class TaskNotFound(NotFound):
    """Task/Detail does not know the task ("There is no task yet."). For a task id that Run
    returned this is passing: Wiro may not show a new task at once, so it is worth a retry."""

    retryable = True


class ValidationFailed(WiroAPIError):
    """Wiro refused the inputs (code 0 with a validation message)."""


class RateLimited(WiroAPIError):
    """HTTP 429. `retry_after` is in seconds when Wiro said it."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: int | None):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ConcurrencyLimit(WiroAPIError):
    """Code 96: the project already runs as many tasks as its balance allows.

    Not a failure: the caller should wait for one of its tasks to finish and submit again.
    """

    retryable = True


class InsufficientBalance(WiroAPIError):
    """Code 97: the Wiro project's balance is too low; an admin must top it up."""


class ServerError(WiroAPIError):
    """HTTP 5xx from Wiro."""

    retryable = True


class InvalidResponse(WiroError):
    """Wiro answered with something that is not the JSON it documents."""

    retryable = True


class WiroConnectionError(WiroError):
    """Wiro could not be reached, or the answer was lost on the way.

    `reached` is False when the request certainly never got to Wiro (connection refused, DNS
    failure): only then is it safe to send a Run again.
    """

    retryable = True

    def __init__(self, message: str, *, reached: bool):
        super().__init__(message)
        self.reached = reached


class DownloadError(WiroError):
    """An output file could not be fetched or was not an acceptable image."""


class TaskFailed(WiroError):
    """The task ran at Wiro and failed; `task.debugerror` holds Wiro's reason."""

    def __init__(self, task: Task):
        self.task = task
        reason = task.failure_reason or "no reason given"
        super().__init__(f"Wiro task {task.id} failed: {reason}")
