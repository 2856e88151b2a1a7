"""Small helpers that turn the engine's facts into words and kinds for the layers above."""

from __future__ import annotations

from bot.jobs.job import ErrorKind
from bot.wiro.exceptions import (
    AuthError,
    DownloadError,
    InsufficientBalance,
    ValidationFailed,
    WiroConnectionError,
    WiroError,
)


def error_kind(exc: WiroError) -> ErrorKind:
    if isinstance(exc, InsufficientBalance):
        return ErrorKind.INSUFFICIENT_BALANCE
    if isinstance(exc, AuthError):
        return ErrorKind.AUTH
    if isinstance(exc, ValidationFailed):
        return ErrorKind.REJECTED
    if isinstance(exc, DownloadError):
        return ErrorKind.DOWNLOAD
    if isinstance(exc, WiroConnectionError) and exc.reached:
        return ErrorKind.LOST
    return ErrorKind.UNAVAILABLE
