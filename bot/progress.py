"""A running job's progress in words and a bar, the same in Discord and on the command line:
`▰▰▰▰▰▰▱▱▱▱ 60% · step 18/30 · about 12 s left`."""

from __future__ import annotations

from bot.wiro.types import TaskProgress

FILLED, EMPTY = "▰", "▱"
#: Cells in the bar: ten is one per ten percent, readable on a phone.
WIDTH = 10


def percent(progress: TaskProgress) -> int:
    """Whole percent, 0..100; never 100 before Wiro says the task is done."""
    value = int(max(0.0, min(progress.fraction, 1.0)) * 100 + 0.5)
    return min(value, 99) if progress.fraction < 1 else 100


def bar(progress: TaskProgress, width: int = WIDTH) -> str:
    filled = percent(progress) * width // 100
    return FILLED * filled + EMPTY * (width - filled)


def steps(progress: TaskProgress) -> str:
    """ "18/30", or "" when Wiro did not say."""
    if progress.step is None or not progress.total_steps:
        return ""
    return f"{progress.step}/{progress.total_steps}"


def time_left(progress: TaskProgress) -> str:
    """ "about 12 s left", or "" when Wiro did not say."""
    remaining = progress.remaining_seconds
    if remaining is None or remaining < 0:
        return ""
    if remaining < 60:
        return f"about {max(1, round(remaining))} s left"
    minutes, rest = divmod(round(remaining), 60)
    return f"about {minutes} min {rest} s left"


def describe(progress: TaskProgress) -> str:
    """The bar line: `▰▰▰▰▰▰▱▱▱▱ 60% · step 18/30 · about 12 s left`."""
    parts = [f"{bar(progress)} {percent(progress)}%"]
    if steps(progress):
        parts.append(f"step {steps(progress)}")
    if time_left(progress):
        parts.append(time_left(progress))
    return " · ".join(parts)


def plain(progress: TaskProgress) -> str:
    """For a log or a pipe: `60% (18/30, about 12 s left)`."""
    extra = ", ".join(part for part in (steps(progress), time_left(progress)) if part)
    return f"{percent(progress)}%" + (f" ({extra})" if extra else "")
