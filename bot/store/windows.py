"""A member's jobs since a time, through the (server, member, id) index.

A member's windows (the daily limit, member budgets, /usage mine) once had an index of their
own on (server, member, created_at): 35 bytes a job. Ids grow with time, so a lower bound on
the id narrows the member's index to the window, and `guild_days` (kept by triggers,
migration 0002) already holds each server day's smallest id.
"""

from __future__ import annotations

from typing import Any

#: Every job of a server created on or after a UTC day has an id at or above this: its own
#: day's first id is no larger than its id, and this is the least of those days' first ids.
#: NULL when the server has no job since that day, and then no id passes: right, as every
#: job inserted makes or updates its day's row. Jobs of the command line are server 0.
_SINCE_ID = "id >= (SELECT min(first_id) FROM guild_days WHERE guild = ? AND day >= ?)"


def member_since(
    guild_id: int | None, user_id: int, since: float, until: float | None = None
) -> tuple[str, tuple[Any, ...]]:
    """The conditions, and their parameters, for a member's jobs of a server (None: the
    command line) created at or after `since` (and before `until`). `+created_at` keeps
    SQLite off the server's time index, which would read the whole server's window."""
    sql = f"guild_id IS ? AND user_id = ? AND +created_at >= ? AND {_SINCE_ID}"
    params = (guild_id, user_id, since, 0 if guild_id is None else guild_id, int(since // 86400))
    if until is None:
        return sql, params
    return f"{sql} AND +created_at < ?", (*params, until)
