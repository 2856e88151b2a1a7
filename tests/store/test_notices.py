"""Processes sharing PostgreSQL hear each other (LISTEN/NOTIFY), and each live process holds a
nonce stripe of its own, so several processes signing with one Wiro key never repeat a nonce."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from bot.jobs.job import JobState
from bot.store import Notices, Store
from bot.wiro import Credentials, NonceSource, RetryPolicy, WiroClient
from tests.jobs.conftest import MODEL
from tests.jobs.test_claims import waiting_job
from tests.wiro_standin import WiroStandIn


async def heard(notices: asyncio.Queue[str], expected: str) -> None:
    async with asyncio.timeout(5):
        while (notice := await notices.get()) != expected:
            del notice


async def test_a_process_hears_slots_freed_and_cancels_asked_in_another(
    postgres_url: str,
) -> None:
    async with (
        await Store.open_url(postgres_url) as here,
        await Store.open_url(postgres_url) as there,
    ):
        listening = there.notices()
        assert listening is not None
        got: asyncio.Queue[str] = asyncio.Queue()
        await listening.listen(got.put_nowait)
        job = await here.jobs.create(waiting_job("heard elsewhere", 1))
        await here.jobs.request_cancel(job.id)
        await heard(got, f"cancel {job.id}")
        await here.jobs.finish(job.id, [], status=JobState.CANCELLED, finished_at=time.time())
        await heard(got, "freed")


async def test_sqlite_has_no_notices(tmp_path: object) -> None:
    async with await Store.open(f"{tmp_path}/wirobot.db") as store:
        assert store.notices() is None


async def test_each_live_process_holds_its_own_stripe_until_it_ends(postgres_url: str) -> None:
    first, second, third = (Notices(postgres_url) for _ in range(3))
    try:
        for notices in (first, second, third):
            await notices.listen(lambda notice: None)
        held = [await n.hold_stripe(4) for n in (first, second, third)]
        assert sorted(held) == [0, 1, 2]  # type: ignore[type-var]
        assert await first.hold_stripe(4) == held[0]  # held, not taken again
        await second.close()  # its process ended: its stripe is free again
        fourth = Notices(postgres_url)
        await fourth.listen(lambda notice: None)
        assert await fourth.hold_stripe(4, prefer=held[1] or 0) == held[1]
        await fourth.close()
    finally:
        for notices in (first, second, third):
            await notices.close()


async def test_several_processes_signing_with_one_key_are_never_refused_as_replays(
    postgres_url: str,
) -> None:
    # Three processes' clients, each with its own nonce source, whose clocks read the same
    # millisecond: without stripes every request after the first would be a replay.
    count, stripes = 3, 16
    holders = [Notices(postgres_url) for _ in range(count)]
    async with WiroStandIn() as wiro, aiohttp.ClientSession() as session:
        try:
            clients = []
            for notices in holders:
                await notices.listen(lambda notice: None)
                stripe = await notices.hold_stripe(stripes)
                assert stripe is not None
                source = NonceSource(
                    clock=lambda: 1_734_513_807.123, stripe=stripe, stripes=stripes
                )
                clients.append(
                    WiroClient(
                        session,
                        Credentials(wiro.api_key, wiro.api_secret, nonces=source),
                        base_url=wiro.base_url,
                        retry=RetryPolicy(attempts=1),
                    )
                )
            body = {"prompt": "a lighthouse", "seed": 1}
            runs = [client.run(MODEL, body) for client in clients for _ in range(20)]
            await asyncio.gather(*runs)
        finally:
            for notices in holders:
                await notices.close()
        assert not wiro.auth_failures
        assert len(wiro.nonces) == len(set(wiro.nonces)) == count * 20
