"""A sharded bot on PostgreSQL: this process runs shards 0 and 1 of two, its jobs live in
PostgreSQL, and /imagine and its buttons work as on one SQLite process."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.jobs.job import JobState
from bot.settings import Settings
from tests.discord.conftest import Harness
from tests.wiro_standin import WiroStandIn


@pytest.fixture
def discord_settings(tmp_path: Path, wiro: WiroStandIn, postgres_url: str) -> Settings:
    return Settings(
        discord={"status_edit_interval": 0.5, "shard_count": 2, "shard_ids": [1, 0]},
        wiro={
            "api_key": wiro.api_key,
            "api_secret": wiro.api_secret,
            "base_url": wiro.base_url,
            "socket_url": wiro.socket_url,
        },
        database={"path": tmp_path / "wirobot.db", "url": postgres_url},
        jobs={"poll_min_interval": 0.02, "poll_max_interval": 0.1},
        web={"port": 0},  # no web server: the default port may be taken on the machine
    )


async def test_a_sharded_bot_on_postgresql_imagines_and_its_buttons_work(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    assert h.bot.shard_count == 2 and h.bot.shard_ids == [0, 1]
    result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse at dusk")
    job = await h.finish(await h.queued(await h.last_job()))
    assert job.status is JobState.SUCCEEDED
    posted = h.message(result)
    assert posted.embeds[0].title == "Done" and posted.attachments

    rerolled = await h.alice.click(posted, label="Reroll")
    assert rerolled.acknowledged
    again = await h.finish(await h.queued(await h.last_job()))
    assert again.id == job.id + 1 and again.status is JobState.SUCCEEDED
    assert not (tmp_path / "wirobot.db").exists()  # nothing went to SQLite
