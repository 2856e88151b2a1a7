"""The local queue of jobs waiting for a slot: round-robin across members, so one member's
burst cannot starve the others."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

from bot.jobs.job import Job


def _owner(job: Job) -> Hashable:
    return (job.guild_id, job.user_id)


class WaitingLine:
    def __init__(self) -> None:
        # Owners in turn order; each owner's jobs oldest first.
        self._owners: OrderedDict[Hashable, deque[Job]] = OrderedDict()
        self._ids: set[int] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._ids

    def push(self, job: Job, *, front: bool = False) -> None:
        """Add a job; `front` puts it back first in line (a refused submission)."""
        if job.id in self._ids:
            return
        owner = _owner(job)
        jobs = self._owners.get(owner)
        if jobs is None:
            jobs = self._owners[owner] = deque()
            if front:
                self._owners.move_to_end(owner, last=False)
        if front:
            jobs.appendleft(job)
            self._owners.move_to_end(owner, last=False)
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

    def pop_next(self, can_start: Callable[[Job], bool]) -> Job | None:
        """The first job, in turn order, that may start now; its owner's turn moves last."""
        for owner, jobs in self._owners.items():
            job = jobs[0]
            if can_start(job):
                jobs.popleft()
                self._ids.discard(job.id)
                if jobs:
                    self._owners.move_to_end(owner)
                else:
                    del self._owners[owner]
                return job
        return None

    def position(self, job_id: int) -> int | None:
        """1-based place in line, counting the turns before this job's (None: not waiting)."""
        if job_id not in self._ids:
            return None
        owners = list(self._owners.items())
        for turn, (_, jobs) in enumerate(owners):
            for index, job in enumerate(jobs):
                if job.id != job_id:
                    continue
                ahead = index
                for other_turn, (_, other) in enumerate(owners):
                    if other_turn == turn:
                        continue
                    # Owners earlier in turn order get one more turn before this job.
                    ahead += min(len(other), index + (1 if other_turn < turn else 0))
                return ahead + 1
        return None  # pragma: no cover

    def jobs(self) -> list[Job]:
        return [job for jobs in self._owners.values() for job in jobs]
