"""Log lines as operators read them: one event a line, text or JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import setup_logging
from bot.settings import LoggingSettings


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("bot.store").setLevel(logging.NOTSET)
    logging.getLogger("discord").setLevel(logging.NOTSET)


def log_a_failure() -> None:
    log = logging.getLogger("bot.jobs.engine")
    log.info("job 12 queued at Wiro")
    try:
        raise RuntimeError("the disk is full")
    except RuntimeError:
        log.exception("job 12 could not be saved\nsecond line of the message")


def test_json_logs_are_one_object_a_line_with_the_traceback_inside() -> None:
    stream = io.StringIO()
    setup_logging(LoggingSettings(format="json"), stream=stream)
    log_a_failure()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "bot.jobs.engine"
    assert first["message"] == "job 12 queued at Wiro" and "exc" not in first
    assert second["level"] == "ERROR" and "RuntimeError: the disk is full" in second["exc"]
    assert second["time"].endswith("+00:00")


def test_text_logs_indent_everything_after_an_events_first_line() -> None:
    stream = io.StringIO()
    setup_logging(LoggingSettings(format="text"), stream=stream)
    log_a_failure()
    lines = stream.getvalue().splitlines()
    starts = [line for line in lines if not line.startswith("    ")]
    assert len(starts) == 2
    assert "INFO    bot.jobs.engine: job 12 queued at Wiro" in starts[0]
    assert "ERROR   bot.jobs.engine: job 12 could not be saved" in starts[1]
    assert "    RuntimeError: the disk is full" in lines


def test_commands_that_only_read_keep_migrations_and_discord_chatter_to_themselves() -> None:
    stream = io.StringIO()
    setup_logging(LoggingSettings(), quiet=True, stream=stream)
    logging.getLogger("bot.store.database").info("applying migration 0001_initial.sql")
    logging.getLogger("discord.client").info("logging in using static token")
    logging.getLogger("bot.store.database").warning("the database is at version 9")
    assert stream.getvalue().count("\n") == 1 and "version 9" in stream.getvalue()
