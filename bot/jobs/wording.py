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


def duration_words(seconds: float) -> str:
    """ "3 seconds", "1 minute", "2.5 minutes", "2 hours": the unit a person would pick."""
    if seconds < 90:
        value, unit = round(seconds, 1) if seconds < 10 else round(seconds), "second"
    elif seconds < 90 * 60:
        value, unit = round(seconds / 60, 1), "minute"
    else:
        value, unit = round(seconds / 3600, 1), "hour"
    text = f"{value:g}"
    return f"{text} {unit}" if text == "1" else f"{text} {unit}s"
