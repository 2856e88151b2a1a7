"""Places in the waiting line: every place at once agrees with replaying the fair order."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from bot.jobs.job import Job, JobState, Requester
from bot.jobs.waiting_line import Owner, WaitingLine, owner_of


def job(job_id: int, user: int, guild: int = 1) -> Job:
    return Job(
        id=job_id,
        model="m",
        prompt="p",
        inputs={},
        seed=0,
        status=JobState.WAITING,
        requester=Requester(user_id=user, guild_id=guild, channel_id=1),
        created_at=0.0,
    )


class Line:
    """A waiting line with slots: jobs start, end, wait, come back first, get cancelled."""

    def __init__(self, *, loads_as_mapping: bool = False) -> None:
        self.loads: Counter[Owner] = Counter()
        self.line = WaitingLine(self.loads if loads_as_mapping else lambda o: self.loads[o])
        self.running: list[Job] = []
        self.next_id = 1

    def add(self, user: int, guild: int = 1, *, front: bool = False) -> Job:
        new = job(self.next_id, user, guild)
        self.next_id += 1
        self.line.push(new, front=front)
        return new

    def start(self, can_start: bool = True) -> Job | None:
        started = self.line.pop_next(lambda j: can_start)
        if started is not None:
            self.loads[owner_of(started)] += 1
            self.running.append(started)
        return started

    def end(self, index: int) -> None:
        ended = self.running.pop(index)
        self.loads[owner_of(ended)] -= 1

    def expected(self) -> dict[int, int]:
        return {j.id: place for place, j in enumerate(self.line.order(), start=1)}


def shuffle(rng: random.Random, line: Line, steps: int, members: int) -> None:
    for _ in range(steps):
        action = rng.random()
        if action < 0.5:
            line.add(rng.randrange(members), rng.randrange(2))
        elif action < 0.7 and len(line.line):
            line.start()
        elif action < 0.8 and line.running:
            line.end(rng.randrange(len(line.running)))
        elif action < 0.87 and line.running:
            # A refused submission goes back first in line.
            back = line.running.pop(rng.randrange(len(line.running)))
            line.loads[owner_of(back)] -= 1
            line.line.push(back, front=True)
        elif action < 0.95 and len(line.line):
            line.line.remove(rng.choice(list(line.expected())))
        else:
            line.loads[(rng.randrange(2), rng.randrange(members))] += 1  # a job from elsewhere


@pytest.mark.parametrize("loads_as_mapping", [False, True])
@pytest.mark.parametrize("seed", range(300))
def test_every_place_at_once_matches_the_fair_order_on_random_lines(
    seed: int, loads_as_mapping: bool
) -> None:
    rng = random.Random(seed)
    line = Line(loads_as_mapping=loads_as_mapping)
    members = rng.choice([1, 2, 3, 5, 12])
    for _ in range(rng.randrange(1, 6)):
        shuffle(rng, line, rng.randrange(1, 40), members)
        expected = line.expected()
        assert line.line.positions() == expected
        for job_id, place in expected.items():
            assert line.line.position(job_id) == place


@pytest.mark.parametrize("loads_as_mapping", [False, True])
@pytest.mark.parametrize("seed", range(100))
def test_one_place_without_the_whole_line_matches_the_fair_order(
    seed: int, loads_as_mapping: bool
) -> None:
    rng = random.Random(seed)
    line = Line(loads_as_mapping=loads_as_mapping)
    shuffle(rng, line, rng.randrange(5, 80), rng.choice([2, 4, 9]))
    for job_id, place in line.expected().items():
        line.line._cached = None  # no pass made: counted for this job alone
        assert line.line.position(job_id) == place


def test_a_member_with_no_job_running_goes_before_one_with_a_job_running() -> None:
    line = Line()
    alice = [line.add(user=1) for _ in range(3)]
    line.start()  # alice's first job starts
    bob = line.add(user=2)
    places = line.line.positions()
    assert places == {bob.id: 1, alice[1].id: 2, alice[2].id: 3}


def test_places_follow_a_slot_freeing_up() -> None:
    line = Line()
    alice = [line.add(user=1) for _ in range(2)]
    bob = [line.add(user=2) for _ in range(2)]
    line.start()
    line.start()  # alice's first and bob's first
    line.loads[owner_of(alice[0])] += 2  # alice has two more jobs at Wiro from elsewhere
    assert line.line.positions() == {bob[1].id: 1, alice[1].id: 2}
    line.loads[owner_of(alice[0])] -= 3
    assert line.line.positions() == {alice[1].id: 1, bob[1].id: 2}


def test_a_job_not_waiting_has_no_place() -> None:
    line = Line()
    first = line.add(user=1)
    line.start()
    assert line.line.position(first.id) is None
    assert line.line.position(999) is None
    assert line.line.positions() == {}


def test_ten_thousand_places_from_two_thousand_members_in_one_pass() -> None:
    line = Line()
    rng = random.Random(8)
    for _ in range(10_000):
        line.add(rng.randrange(2_000))
    for _ in range(8):
        line.start()
    places = line.line.positions()
    assert sorted(places.values()) == list(range(1, 10_000 - 8 + 1))


def test_a_new_jobs_place_in_a_long_line_agrees_with_the_whole_line() -> None:
    line = Line(loads_as_mapping=True)
    rng = random.Random(11)
    for _ in range(10_000):
        line.add(rng.randrange(2_000))
    for _ in range(8):
        line.start()
    newest = [line.add(rng.randrange(2_500)) for _ in range(50)]
    places = line.line.positions()
    line.line._cached = None  # each counted alone, as a new job's first status message does
    assert [line.line.position(job.id) for job in newest] == [places[job.id] for job in newest]
