"""`wirobot migrate`, run as a real process: migrations applied then exit, on either
backend, and an SQLite database moved into PostgreSQL whole, ids kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import asyncpg

from bot.jobs.job import JobState, Output, Requester
from bot.store import GuildSettings, HistoryQuery, NewJob, Store
from bot.store.database import migrations
from tests.conftest import new_postgres_database
from tests.postgres_server import PostgresServer
from tests.test_cli import Result, start

VERSION = len(migrations())
ALICE = Requester(user_id=1, guild_id=2**62, channel_id=3)


def env_for(tmp_path: Path, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIROBOT_")}
    env["WIROBOT_DATABASE__PATH"] = str(tmp_path / "data" / "wirobot.db")
    if url is not None:
        env["WIROBOT_DATABASE__URL"] = url
    return env


async def wirobot(env: dict[str, str], cwd: Path, *args: str) -> Result:
    process = await start(env, cwd, *args)
    out, err = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def test_migrate_creates_an_sqlite_database_and_exits(tmp_path: Path) -> None:
    result = await wirobot(env_for(tmp_path), tmp_path, "migrate")
    assert result.code == 0, result.err
    assert f"up to date (version {VERSION})" in result.out
    assert (tmp_path / "data" / "wirobot.db").is_file()


async def test_migrate_brings_postgresql_up_to_date(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = await new_postgres_database(postgres_server)
    shown_password = url.replace("postgres@", "postgres:s3cret@")
    result = await wirobot(env_for(tmp_path, shown_password), tmp_path, "migrate")
    assert result.code == 0, result.err
    assert f"up to date (version {VERSION})" in result.out
    assert "postgres:***@" in result.out and "s3cret" not in result.out + result.err


async def test_an_sqlite_database_moves_into_postgresql_whole(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    old = tmp_path / "old.db"
    async with await Store.open(old) as store:
        ids = []
        for n in range(30):
            job = await store.jobs.create(
                NewJob(
                    "m/one",
                    f"a cat {n}",
                    {"prompt": f"a cat {n}", "steps": 20},
                    n,
                    ALICE,
                    time.time(),
                )
            )
            ids.append(job.id)
        await store.jobs.finish(
            ids[0],
            [Output(0, "a.png", "image/png", 5, "https://x/a.png", "/o/a.png")],
            status=JobState.SUCCEEDED,
            cost="0.001",
        )
        await store.guilds.save(GuildSettings(guild_id=2**62, default_model="m/one"))
        await store.tools.put_tool_detail("o/m", {"x": 1})
        before = await store.jobs.history(HistoryQuery(limit=100))

    url = await new_postgres_database(postgres_server)
    env = env_for(tmp_path, url)
    result = await wirobot(env, tmp_path, "migrate", "--from-sqlite", str(old))
    assert result.code == 0, result.err
    assert "copied 30 rows of jobs" in result.out and "copied 1 rows of outputs" in result.out

    async with await Store.open_url(url) as store:
        after = await store.jobs.history(HistoryQuery(limit=100))
        assert [(j.id, j.prompt, j.inputs, j.cost) for j in after] == [
            (j.id, j.prompt, j.inputs, j.cost) for j in before
        ]
        first = await store.jobs.get(ids[0])
        assert first is not None and [o.path for o in first.outputs] == ["/o/a.png"]
        assert (await store.guilds.get(2**62)).default_model == "m/one"
        assert await store.tools.get_tool_detail("o/m") == {"x": 1}
        # The words index, built after the rows, finds a job by a word of its prompt.
        found = await store.jobs.history(HistoryQuery(guild_id=ALICE.guild_id, search="cat 7"))
        assert [j.prompt for j in found] == ["a cat 7"]
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'jobs_prompt_words'"
            )
        finally:
            await conn.close()
        # New jobs continue the numbering.
        new = await store.jobs.create(NewJob("m/one", "next", {"prompt": "next"}, 1, ALICE, 0.0))
        assert new.id == ids[-1] + 1

    # A second copy would mix two databases: refused, nothing written.
    again = await wirobot(env, tmp_path, "migrate", "--from-sqlite", str(old))
    assert again.code == 2 and "not empty" in again.err and "nothing was copied" in again.err
    async with await Store.open_url(url) as store:
        assert await store.jobs.count_history(HistoryQuery()) == 31


async def test_from_sqlite_needs_a_postgresql_url_and_an_existing_file(
    tmp_path: Path, postgres_url: str
) -> None:
    no_url = await wirobot(env_for(tmp_path), tmp_path, "migrate", "--from-sqlite", "x.db")
    assert no_url.code == 2 and "database.url" in no_url.err
    missing = await wirobot(
        env_for(tmp_path, postgres_url), tmp_path, "migrate", "--from-sqlite", "x.db"
    )
    assert missing.code == 2 and "no such file" in missing.err and "Traceback" not in missing.err
    assert not (tmp_path / "x.db").exists()
