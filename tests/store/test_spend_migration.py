"""The spend migration only adds: costs stored before it become exact picodollars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import aiosqlite

from bot.store import Store
from bot.store.database import migrations


async def test_costs_stored_as_floats_before_become_exact(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    number, _, first = migrations()[0]
    async with aiosqlite.connect(path) as conn:
        await conn.executescript(f"{first}\nPRAGMA user_version = {number};")
        await conn.execute(
            "INSERT INTO jobs (model, prompt, inputs, seed, status, created_at, cost, task_id)"
            " VALUES ('a/b', 'x', '{}', 1, 'succeeded', 1.0, 0.00351, '7')"
        )
        await conn.commit()

    async with await Store.open(path) as store:
        job = await store.jobs.get(1)
        assert job is not None
        assert job.cost == Decimal("0.00351")
        assert job.estimate is None
        assert await store.jobs.spend(guild_id=None) == (1, Decimal("0.00351"))
