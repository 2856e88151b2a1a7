"""Logging: one line per event on stderr, as text for people or JSON for log collectors.

A traceback stays inside its event: in text it follows on indented lines, in JSON it is the
`exc` field of the one object.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.settings import LoggingSettings

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Loggers whose INFO lines are noise for a command that only reads or checks (a migration
#: applied, discord.py "logging in using static token").
_QUIET_FOR_READERS = ("bot.store", "discord")


class JsonFormatter(logging.Formatter):
    """`{"time": ..., "level": "INFO", "logger": "bot.jobs", "message": "...", "exc": ...}`."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            event["exc"] = record.exc_text
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return json.dumps(event, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The plain format; the lines after an event's first (a traceback, a message with line
    breaks) are indented, so every unindented line starts an event."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\n", "\n    ")


def setup_logging(
    settings: LoggingSettings, *, quiet: bool = False, stream: TextIO | None = None
) -> None:
    """Configure the root logger once, for the process. `quiet`: a command that only reads
    keeps the store's INFO lines (migrations) to itself."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    # discord.py installs its own handler only through Client.run(); we use start().
    if quiet:
        for name in _QUIET_FOR_READERS:
            logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
