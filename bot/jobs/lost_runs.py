"""Finding the task a Run may have created when its answer was lost.

A Run whose answer never came (the connection broke, the bot stopped in between) may have
created a billed task. It is never sent again blindly: Task/List (as Wiro's MCP client uses
it) shows the project's newest tasks, and the one with this job's model, time and inputs is
the job's. Where Wiro cannot tell, the caller says so plainly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.jobs.job import Job
from bot.store import Store
from bot.wiro.client import WiroClient
from bot.wiro.exceptions import WiroError
from bot.wiro.types import Task

log = logging.getLogger(__name__)

#: Clocks differ: a task may look created this much before the job was submitted.
CLOCK_SLACK = 120.0
#: Pauses before each look at Task/List: a new task may take a moment to show.
LOOKS = (0.0, 1.0, 3.0)


@dataclass(frozen=True, slots=True)
class Search:
    #: Matching tasks no other job knows, newest first.
    found: list[Task]
    #: Whether Wiro answered at all: no task found *and* answered means there is none.
    answered: bool


def matches(task: Task, inputs: Mapping[str, Any], since: float) -> bool:
    """Whether `task` was created after `since` with these inputs (as sent, compared as text;
    inputs Wiro does not echo are not compared)."""
    if task.createtime and task.createtime < since:
        return False
    echoed = task.parameters
    if not echoed or "prompt" not in echoed:
        return False
    return all(
        str(echoed[name]).strip() == str(value).strip()
        for name, value in inputs.items()
        if name in echoed
    )


class LostRuns:
    def __init__(self, client: WiroClient, store: Store) -> None:
        self._client = client
        self._store = store
        self.limit = 50

    async def search(self, job: Job, inputs: Mapping[str, Any]) -> Search:
        since = (job.submitted_at or job.created_at) - CLOCK_SLACK
        answered = False
        for pause in LOOKS:
            await asyncio.sleep(pause)
            try:
                tasks = await self._client.list_tasks(model=job.model, limit=self.limit)
            except WiroError as exc:
                log.warning("job %s: Task/List failed while looking for its task: %s", job.id, exc)
                continue
            answered = True
            candidates = [task for task in tasks if matches(task, inputs, since)]
            known = await self._store.jobs.known_task_ids(task.id for task in candidates)
            found = [task for task in candidates if task.id not in known]
            if found:
                found.sort(key=lambda task: (task.createtime, _numeric(task.id)), reverse=True)
                return Search(found, answered)
        return Search([], answered)


def _numeric(task_id: str) -> int:
    return int(task_id) if task_id.isdigit() else 0
