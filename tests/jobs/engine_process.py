"""One engine in a process of its own, for tests of several processes on one database.

    python -m tests.jobs.engine_process DB BASE_URL KEY SECRET OUTPUTS EXPECTED

Starts a JobEngine on the SQLite file DB against the Wiro at BASE_URL, prints "ready", and
runs until the database holds EXPECTED jobs and none of them is unfinished; then prints how
many jobs it finished itself.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp

from bot.catalog.catalog import Catalog
from bot.jobs.engine import JobEngine
from bot.jobs.events import EventKind
from bot.settings import JobSettings
from bot.store import HistoryQuery, Store
from bot.wiro import Credentials, RetryPolicy, WiroClient

MODEL = "ArsMachina/Ars-Niji-Style-v1"


async def main(db: str, base_url: str, key: str, secret: str, outputs: str, expected: int) -> None:
    settings = JobSettings(
        poll_min_interval=0.02,
        poll_max_interval=0.1,
        max_concurrent=4,
        max_concurrent_per_guild=4,
        max_concurrent_per_user=4,
        claim_lease_seconds=10,  # a loaded test machine may stall a process for seconds
    )
    async with aiohttp.ClientSession() as session, await Store.open(db) as store:
        client = WiroClient(
            session, Credentials(key, secret), base_url=base_url, retry=RetryPolicy(base_delay=0)
        )
        engine = JobEngine(
            client=client,
            store=store,
            catalog=Catalog.from_seeds(),
            settings=settings,
            outputs_dir=Path(outputs),
            default_model=MODEL,
        )
        ended = 0

        async def count_finished() -> None:
            nonlocal ended
            with engine.subscribe() as events:
                async for event in events:
                    ended += event.kind is EventKind.FINISHED

        counter = asyncio.create_task(count_finished())
        await engine.start()
        print("ready", flush=True)
        try:
            async with asyncio.timeout(60):
                while True:
                    total = await store.jobs.count_history(HistoryQuery())
                    if total >= expected and not await store.jobs.unfinished():
                        break
                    await asyncio.sleep(0.05)
        finally:
            await engine.close()
            counter.cancel()
        print(f"finished {ended}", flush=True)


if __name__ == "__main__":
    db, base_url, key, secret, outputs, expected = sys.argv[1:7]
    asyncio.run(main(db, base_url, key, secret, outputs, int(expected)))
