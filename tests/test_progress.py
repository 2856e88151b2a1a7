"""How a running job's progress reads, in Discord and on the command line."""

from __future__ import annotations

from bot.progress import describe, plain
from bot.wiro.types import TaskProgress


def test_the_bar_shows_percent_step_and_time_left() -> None:
    progress = TaskProgress(0.6, step=18, total_steps=30, remaining_seconds=12.4)
    assert describe(progress) == "▰▰▰▰▰▰▱▱▱▱ 60% · step 18/30 · about 12 s left"
    assert plain(progress) == "60% (18/30, about 12 s left)"


def test_without_steps_or_time_only_the_percent_is_shown() -> None:
    assert describe(TaskProgress(0.15)) == "▰▱▱▱▱▱▱▱▱▱ 15%"
    assert plain(TaskProgress(0.05)) == "5%"


def test_a_task_not_yet_done_never_reads_100_percent() -> None:
    assert plain(TaskProgress(0.999)) == "99%"
    assert plain(TaskProgress(1.0)) == "100%"
    assert plain(TaskProgress(1.5)) == "100%"
    assert plain(TaskProgress(-1)) == "0%"


def test_minutes_left_read_as_minutes() -> None:
    assert plain(TaskProgress(0.1, remaining_seconds=130)) == "10% (about 2 min 10 s left)"
