"""Processes sharing one PostgreSQL database hear each other: LISTEN/NOTIFY on one connection
of their own (not a pooled one: it must stay open), and a nonce stripe per live process.

The notices are said by the job repository in the transactions that make the changes
(`bot.store.jobs.NOTICES`): "freed" when a job left Wiro's slots, "cancel <id>" when
someone asked to cancel a job, "released" when a stopping process gave up its jobs. A
notice can be missed (the connection drops, the process was busy starting): listeners keep
a periodic look as their safety net.

The stripe: processes signing with one Wiro key must never send the same nonce. Each live
process holds one of a few numbered session locks (`pg_try_advisory_lock`), released by
PostgreSQL when its connection ends, so two live processes never hold the same stripe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from bot.store.jobs import NOTICES

log = logging.getLogger(__name__)

#: The advisory lock key whose second half numbers the nonce stripes.
_STRIPE_LOCK = 0x77697232


class Notices:
    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: asyncpg.Connection | None = None
        self._listeners: list[Callable[[str], None]] = []
        self._stripe: tuple[int, int] | None = None  # (held, of how many)

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def listen(self, on_notice: Callable[[str], None]) -> None:
        """Hear every notice from now on (again after a lost connection: call it again)."""
        if on_notice not in self._listeners:
            self._listeners.append(on_notice)
        if self.listening:
            return
        if self._conn is not None:
            log.warning("the database connection for notices was lost; listening again")
        conn = await asyncpg.connect(self._url)
        await conn.add_listener(NOTICES, self._heard)
        self._conn = conn
        if self._stripe is not None:  # the lock went with the old connection
            held, stripes = self._stripe
            self._stripe = None
            if await self.hold_stripe(stripes, prefer=held) != held:
                log.warning("nonce stripe %d was taken meanwhile; nonces may repeat", held)

    def _heard(self, conn: object, pid: int, channel: str, payload: object) -> None:
        for listener in self._listeners:
            listener(str(payload))

    async def hold_stripe(self, stripes: int, *, prefer: int = 0) -> int | None:
        """A stripe in range(stripes) no other live process holds (`prefer` first), held
        while this connection lives; None when all are held."""
        if self._stripe is not None:
            return self._stripe[0]
        if self._conn is None:
            raise RuntimeError("listen first: the stripe lives on the notices' connection")
        for n in sorted(range(stripes), key=lambda n: n != prefer):
            if await self._conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", _STRIPE_LOCK, n):
                self._stripe = (n, stripes)
                return n
        return None

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()
