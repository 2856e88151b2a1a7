"""Reads kept for a moment, for the hot paths of a burst.

Every /imagine and every autocomplete reads its server's settings (and budget): a burst of
thousands from one server would make as many identical reads, each a turn on the database's
one connection, where an autocomplete then waits behind the burst. Kept here, a server's
settings are read at most once per `RECENT` seconds. This process's own writes forget the
kept value at once; another process's write shows within `RECENT` seconds (Discord sends a
server's interactions to one shard, so its settings change where they are read).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: How long a read is kept, in seconds.
RECENT = 2.0
#: Kept values at most (servers are few; this only bounds a flood of unknown ids).
LIMIT = 10_000


class Recent(Generic[K, V]):
    def __init__(self, keep: float = RECENT, clock: Callable[[], float] = time.monotonic) -> None:
        self._keep = keep
        self._clock = clock
        self._values: dict[K, tuple[float, V]] = {}
        #: Bumped by every `forget`: a read that began before it must not be kept.
        self.generation = 0

    def get(self, key: K) -> V | None:
        """The kept value, or None when there is none recent enough."""
        kept = self._values.get(key)
        if kept is None:
            return None
        if self._clock() - kept[0] >= self._keep:
            del self._values[key]
            return None
        return kept[1]

    async def read(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The kept value, or `load()`'s, kept unless something was written meanwhile."""
        value = self.get(key)
        if value is None:
            generation = self.generation
            value = await load()
            self.put(key, value, generation)
        return value

    def put(self, key: K, value: V, generation: int) -> None:
        """Keep `value`, read when `self.generation` was `generation`: unless something was
        written since the read began."""
        if generation != self.generation:
            return
        if len(self._values) >= LIMIT:
            self._values.clear()
        self._values[key] = (self._clock(), value)

    def forget(self, key: K | None = None) -> None:
        """Drop a written key's value (None: every value)."""
        self.generation += 1
        if key is None:
            self._values.clear()
        else:
            self._values.pop(key, None)
