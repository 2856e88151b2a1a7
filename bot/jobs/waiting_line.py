"""The local queue of jobs waiting for a slot.

Fair across members: the next job comes from the member with the fewest jobs at Wiro right
now, and among equals from the one whose turn came least recently. So one member's burst
cannot starve the others, and a member who just got a slot goes behind those who have none.

Places in line follow from that rule without replaying it job by job. Call an owner's load
its jobs at Wiro; its waiting jobs start at loads L, L+1, ... in turn. At any one load the
owners that first wait at that load go first, by their last turn, and then the owners that
went at the load below, in the order they went there: so within a load, owners who entered at a
higher load go first, then by last turn. `positions()` walks the loads once. `position()` of one
job (every new job's first status message asks it, so a burst of thousands does) looks at no
other owner one by one when the loads come as a mapping: the owners are kept sorted by turn at
each count of jobs waiting, so those before the job are counted with a sum and a bisection,
and only the few owners with jobs at Wiro are looked at on their own.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from itertools import repeat
from typing import Any

from bot.jobs.job import Job

Owner = Hashable

#: The turn of an owner never served: before everyone.
_NEVER = -(2**62)


def owner_of(job: Job) -> Owner:
    return (job.guild_id, job.user_id)


class WaitingLine:
    def __init__(self, load: Callable[[Owner], int] | Mapping[Any, int]) -> None:
        """`load`: how many jobs each owner has at Wiro now, as a function of the owner or as
        a mapping (absent: none). With a mapping, one job's place is counted from the
        mapping's owners alone (keep it to the owners with jobs at Wiro), not every waiting
        owner."""
        self._load: Callable[[Owner], int]
        if isinstance(load, Mapping):
            get = load.get
            self._load = lambda owner: get(owner, 0)
            self._loads: Mapping[Any, int] | None = load
        else:
            self._load, self._loads = load, None
        # Each waiting owner's jobs, oldest first.
        self._owners: dict[Owner, deque[Job]] = {}
        self._ids: dict[int, Owner] = {}
        # When each owner was last served (a counter; never served sorts first).
        self._served: dict[Owner, int] = {}
        self._serial = 0
        self._first_served = 0  # the smallest value in _served, for `push(front=True)`
        # For one job's place without a look at every waiting owner: `_levels[j]` holds the
        # sort keys (last turn, entry) of the owners with more than j jobs waiting, in order;
        # `_entered` numbers the owners in the line's order (when each last joined it).
        self._levels: list[list[tuple[int, int]]] = []
        self._entered: dict[Owner, int] = {}
        self._entries = 0
        # Every place in line, kept until the line or an owner's load changes.
        self._version = 0
        self._cached: tuple[int, tuple[int, ...], dict[int, int]] | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, job_id: int) -> bool:
        return job_id in self._ids

    def ids(self) -> list[int]:
        return list(self._ids)

    def push(self, job: Job, *, front: bool = False) -> None:
        """Add a job; `front` puts it back first in line (a refused submission)."""
        if job.id in self._ids:
            return
        owner = owner_of(job)
        jobs = self._owners.get(owner)
        if jobs is None:
            jobs = self._owners[owner] = deque()
            self._entries += 1
            self._entered[owner] = self._entries
        if front:
            was = self._key(owner)
            self._first_served = min(self._first_served, 0) - 1
            self._served[owner] = self._first_served
            self._rekey(owner, was, len(jobs))
            jobs.appendleft(job)
        else:
            jobs.append(job)
        self._grow(owner, len(jobs) - 1)
        self._ids[job.id] = owner
        self._version += 1

    def remove(self, job_id: int) -> bool:
        owner = self._ids.pop(job_id, None)
        if owner is None:
            return False
        jobs = self._owners[owner]
        for job in jobs:
            if job.id == job_id:
                jobs.remove(job)
                break
        self._shrink(owner, len(jobs))
        if not jobs:
            del self._owners[owner]
            del self._entered[owner]
        self._version += 1
        return True

    # -- owners by how many jobs they have waiting --------------------------------------------

    def _key(self, owner: Owner) -> tuple[int, int]:
        """Among owners who enter a load together: by last turn, then by the line's order."""
        return self._served.get(owner, _NEVER), self._entered[owner]

    def _grow(self, owner: Owner, had: int) -> None:
        """`owner` had `had` jobs waiting and has one more."""
        if had == len(self._levels):
            self._levels.append([])
        insort(self._levels[had], self._key(owner))

    def _shrink(self, owner: Owner, has: int) -> None:
        """`owner` has one job fewer waiting, `has` now (its key not yet changed)."""
        level = self._levels[has]
        del level[bisect_left(level, self._key(owner))]
        while self._levels and not self._levels[-1]:
            self._levels.pop()

    def _rekey(self, owner: Owner, was: tuple[int, int], has: int) -> None:
        """`owner`'s key changed from `was` (a new turn); it has `has` jobs waiting."""
        key = self._key(owner)
        for level in self._levels[:has]:
            del level[bisect_left(level, was)]
            insort(level, key)

    def _loads_now(self) -> tuple[int, ...]:
        """Every waiting owner's load, in the line's order."""
        if self._loads is not None:
            return tuple(map(self._loads.get, self._owners, repeat(0)))
        return tuple(map(self._load, self._owners))

    def _turn(self, owner: Owner) -> int:
        return self._served.get(owner, _NEVER)

    def pop_next(self, can_start: Callable[[Job], bool]) -> Job | None:
        """The first job, in fair order, that may start now."""
        loads = dict(zip(self._owners, self._loads_now(), strict=True))
        for owner in sorted(self._owners, key=lambda o: (loads[o], self._turn(o))):
            jobs = self._owners[owner]
            if can_start(jobs[0]):
                job = jobs.popleft()
                del self._ids[job.id]
                self._shrink(owner, len(jobs))
                was = self._key(owner)
                self._serial += 1
                self._served[owner] = self._serial
                if jobs:
                    self._rekey(owner, was, len(jobs))
                else:
                    del self._owners[owner]
                    del self._entered[owner]
                self._version += 1
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

    def positions(self) -> dict[int, int]:
        """Every waiting job's 1-based place in line, in one pass over the line. The answer is
        kept until the line or a waiting owner's load changes; do not change it."""
        loads = self._loads_now()
        cached = self._cached
        if cached is not None and cached[0] == self._version and cached[1] == loads:
            return cached[2]
        load_of = dict(zip(self._owners, loads, strict=True))
        # Owners in the order they first get a turn: by load, then by last turn (stable, so
        # ties keep the line's order, as `min` does in `order`).
        entering = sorted(self._owners, key=lambda o: (load_of[o], self._turn(o)))
        places: dict[int, int] = {}
        place = 0
        going: list[Iterator[Job]] = []  # owners with jobs left, in this load's order
        level = 0
        i = 0
        while i < len(entering) or going:
            if not going:
                level = load_of[entering[i]]  # skip loads at which nobody waits
            fresh: list[Iterator[Job]] = []
            while i < len(entering) and load_of[entering[i]] == level:
                fresh.append(iter(self._owners[entering[i]]))
                i += 1
            still: list[Iterator[Job]] = []
            for jobs in (*fresh, *going):
                job = next(jobs, None)
                if job is not None:
                    place += 1
                    places[job.id] = place
                    still.append(jobs)
            going = still
            level += 1
        self._cached = (self._version, loads, places)
        return places

    def _counted(self, owner: Owner, index: int, loads: Mapping[Any, int]) -> int:
        """The place of `owner`'s job number `index`, counted from the owners' levels and
        the few owners with jobs at Wiro: no look at every waiting owner."""
        entry = loads.get(owner, 0)
        level = entry + index
        key = self._key(owner)
        levels = self._levels
        # As if no owner had a job at Wiro: every owner's jobs below this level go first,
        # then, at this level, the owners before this one by turn and order.
        before = sum(map(len, levels[:level]))
        if entry == 0:
            before += bisect_left(levels[level], key)
        # Then the owners with jobs at Wiro: take back what was counted for them, count them
        # as they are (as in `position`'s full count).
        owners = self._owners
        for other, other_entry in loads.items():
            if not other_entry or other not in owners:
                continue
            size = len(owners[other])
            other_key = self._key(other)
            before -= min(size, level)
            if entry == 0 and size > level and other_key < key:
                before -= 1
            depth = level - other_entry
            if depth < 0:
                continue
            if depth >= size:
                before += size
                continue
            before += depth
            if other_entry < entry:
                continue
            if other_entry > entry or (other != owner and other_key < key):
                before += 1
        return before + 1

    def position(self, job_id: int) -> int | None:
        """1-based place in line (None: not waiting). A lookup after `positions()` while
        nothing changed; otherwise one count over the waiting owners, not the whole line."""
        owner = self._ids.get(job_id)
        if owner is None:
            return None
        cached = self._cached
        if cached is not None and cached[0] == self._version and cached[1] == self._loads_now():
            return cached[2][job_id]
        jobs = self._owners[owner]
        index = next(n for n, job in enumerate(jobs) if job.id == job_id)
        if self._loads is not None:
            return self._counted(owner, index, self._loads)
        load = self._load
        entry = load(owner)
        level = entry + index
        turn = self._turn(owner)
        served = self._served.get
        # Jobs at lower loads go first; at this load, owners who entered at a higher load, then
        # by last turn, then by place in the line. Written for speed: a burst runs this for
        # every new job, over every waiting owner (most with no job at Wiro: entry 0).
        before = 0
        passed = False  # whether `owner` came yet in the line's order (breaks ties)
        owners = self._owners
        if self._loads is not None:
            loads = self._loads
            entries: Iterator[int] = map(loads.get, owners, repeat(0))
        else:
            entries = map(load, owners)
        for other, queue, other_entry in zip(owners, owners.values(), entries, strict=True):
            depth = level - other_entry
            if depth < 0:
                continue  # all its jobs come after this level
            size = len(queue)
            if depth >= size:
                before += size  # all its jobs come before this level
                continue
            before += depth
            if other_entry < entry:
                continue  # at this level, after the owners who entered higher
            if other_entry > entry:
                before += 1
            elif other == owner:
                passed = True
            else:
                other_turn = served(other, _NEVER)
                if other_turn < turn or (other_turn == turn and not passed):
                    before += 1
        return before + 1
