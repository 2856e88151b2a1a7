"""The local queue of jobs waiting for a slot.

Fair across members: the next job comes from the member with the fewest jobs at Wiro right
now, and among equals from the one whose turn came least recently. So one member's burst
cannot starve the others, and a member who just got a slot goes behind those who have none.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable

from bot.jobs.job import Job

Owner = Hashable


def owner_of(job: Job) -> Owner:
    return (job.guild_id, job.user_id)


class WaitingLine:
    def __init__(self, load: Callable[[Owner], int]) -> None:
        """`load(owner)`: how many jobs that owner has at Wiro now."""
        self._load = load
        # Each waiting owner's jobs, oldest first.
        self._owners: dict[Owner, deque[Job]] = {}
        self._ids: set[int] = set()
        # When each owner was last served (a counter; never served sorts first).
        self._served: dict[Owner, int] = {}
        self._serial = 0

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._ids

    def push(self, job: Job, *, front: bool = False) -> None:
        """Add a job; `front` puts it back first in line (a refused submission)."""
        if job.id in self._ids:
            return
        owner = owner_of(job)
        jobs = self._owners.setdefault(owner, deque())
        if front:
            jobs.appendleft(job)
            self._served[owner] = min(self._served.values(), default=0) - 1
        else:
            jobs.append(job)
        self._ids.add(job.id)

    def remove(self, job_id: int) -> bool:
        if job_id not in self._ids:
            return False
        for owner, jobs in self._owners.items():
            for job in jobs:
                if job.id == job_id:
                    jobs.remove(job)
                    if not jobs:
                        del self._owners[owner]
                    self._ids.discard(job_id)
                    return True
        return False  # pragma: no cover - _ids and _owners agree

    def _turn(self, owner: Owner) -> int:
        return self._served.get(owner, -(2**62))

    def pop_next(self, can_start: Callable[[Job], bool]) -> Job | None:
        """The first job, in fair order, that may start now."""
        loads = {owner: self._load(owner) for owner in self._owners}
        for owner in sorted(self._owners, key=lambda o: (loads[o], self._turn(o))):
            jobs = self._owners[owner]
            if can_start(jobs[0]):
                job = jobs.popleft()
                self._ids.discard(job.id)
                if not jobs:
                    del self._owners[owner]
                self._serial += 1
                self._served[owner] = self._serial
                return job
        return None

    def order(self) -> list[Job]:
        """Every waiting job in the order it would start if no job at Wiro finished."""
        loads = {owner: self._load(owner) for owner in self._owners}
        turn = {owner: self._turn(owner) for owner in self._owners}
        queues = {owner: deque(jobs) for owner, jobs in self._owners.items()}
        last = self._serial
        result: list[Job] = []
        while queues:
            owner = min(queues, key=lambda o: (loads[o], turn[o]))
            result.append(queues[owner].popleft())
            loads[owner] += 1
            last += 1
            turn[owner] = last
            if not queues[owner]:
                del queues[owner]
        return result

    def position(self, job_id: int) -> int | None:
        """1-based place in line (None: not waiting)."""
        if job_id not in self._ids:
            return None
        for place, job in enumerate(self.order(), start=1):
            if job.id == job_id:
                return place
        return None  # pragma: no cover
