"""When the next Run may go to Wiro: politeness at Wiro's limits.

- Code 96 (the project runs as many tasks as its balance allows): the number of our tasks at
  Wiro when it came is Wiro's current limit, the *ceiling*. No Run goes beyond it until one of
  our tasks ends, or a back-off (1 s, doubling to 30 s) passes; then one probe Run goes. A
  probe that succeeds lifts the ceiling. So while Wiro stays full, at most one Run per back-off.
- Code 97 (balance too low): every submission pauses; one probe Run per back-off, and the
  first Run that succeeds ends the pause.
- HTTP 429: no Run before Retry-After (or the back-off) has passed. Nothing fails.

The gate is plain bookkeeping with an injectable clock; the dispatcher asks it and waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 1.0
    most: float = 30.0

    def after(self, current: float | None) -> float:
        return self.first if current is None else min(current * 2, self.most)


class WiroGate:
    def __init__(
        self,
        *,
        full: Backoff = Backoff(1.0, 30.0),
        balance: Backoff = Backoff(1.0, 300.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.full_backoff = full
        self.balance_backoff = balance
        self._clock = clock
        #: Wiro's concurrency limit as last learned (None: not known to be full).
        self.ceiling: int | None = None
        self._full_wait: float | None = None
        self._full_until = 0.0
        #: Why submissions are paused (code 97), in one line; None when they are not.
        self.paused: str | None = None
        self._balance_wait: float | None = None
        self._probe_at = 0.0
        self._slow_until = 0.0
        self._probing = False

    # -- asking ----------------------------------------------------------------------------

    def may_run(self, at_wiro: int) -> bool:
        """Whether a Run may go now, with `at_wiro` of our jobs holding a slot at Wiro."""
        now = self._clock()
        if now < self._slow_until:
            return False
        if self.paused is not None:
            return not self._probing and now >= self._probe_at
        if self.ceiling is not None and at_wiro >= self.ceiling:
            return not self._probing and now >= self._full_until
        return True

    def is_probe(self, at_wiro: int) -> bool:
        """Whether a Run sent now (allowed by `may_run`) tests a limit rather than a free slot."""
        return self.paused is not None or (self.ceiling is not None and at_wiro >= self.ceiling)

    def next_look(self) -> float | None:
        """Seconds until `may_run` may change by time alone (None: only an event changes it)."""
        now = self._clock()
        times = [t for t in (self._slow_until, self._full_until, self._probe_at) if t > now]
        return min(times) - now if times else None

    def reason(self, at_wiro: int) -> str | None:
        """Why a waiting job is not being sent, for people; None when only our own limits
        (or nothing) hold it."""
        if self.paused is not None:
            return self.paused
        if self.ceiling is not None and at_wiro >= self.ceiling:
            if at_wiro <= 0:
                return "Wiro is busy with other work of this project"
            others = "job" if at_wiro == 1 else "jobs"
            return f"Wiro is busy with this project's {at_wiro} other {others}"
        if self._clock() < self._slow_until:
            return "Wiro asked the bot to slow down"
        return None

    # -- telling ---------------------------------------------------------------------------

    def sending(self, at_wiro: int) -> bool:
        """A Run is about to go; `at_wiro` counts our jobs at Wiro before it. Returns
        whether it is a probe (pass it back to `accepted`)."""
        probe = self.is_probe(at_wiro)
        if probe:
            self._probing = True
        return probe

    def accepted(self, probe: bool) -> bool:
        """Wiro took a Run. Returns True when this ended a pause for the balance."""
        if probe:
            # Beyond the ceiling and taken: Wiro's limit has grown (or was never ours).
            self._probing = False
            self.ceiling = None
        self._full_wait = None
        self._balance_wait = None
        ended = self.paused is not None
        self.paused = None
        return ended

    def full(self, at_wiro: int) -> None:
        """Code 96 with `at_wiro` of our other jobs at Wiro."""
        self._probing = False
        self.ceiling = max(at_wiro, 0)
        self._full_wait = self.full_backoff.after(self._full_wait)
        self._full_until = self._clock() + self._full_wait

    def out_of_balance(self, reason: str) -> bool:
        """Code 97. Returns True when this started a pause."""
        self._probing = False
        started = self.paused is None
        self.paused = reason
        self._balance_wait = self.balance_backoff.after(self._balance_wait)
        self._probe_at = self._clock() + self._balance_wait
        return started

    def slow_down(self, retry_after: float | None) -> None:
        """HTTP 429 on a Run (the client already waited what it could)."""
        self._probing = False
        wait = retry_after if retry_after is not None else self.full_backoff.first
        self._slow_until = max(self._slow_until, self._clock() + wait)

    def not_answered(self, probe: bool) -> None:
        """The Run ended another way (an error, a lost answer): the probe is over."""
        if probe:
            self._probing = False
