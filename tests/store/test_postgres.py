"""PostgreSQL specifics: SQLite's spelling translated, migrations kept in a table, passwords
never shown, and several processes sharing one database."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from bot.jobs.job import JobState, Output, Requester
from bot.settings import ConfigError, load_settings, mask_url
from bot.store import NewJob, Store
from bot.store.database import migrations
from bot.store.postgres import translate, translate_for
from tests.conftest import new_postgres_database
from tests.postgres_server import PostgresServer


@pytest.mark.parametrize(
    ("sqlite", "postgresql"),
    [
        ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = $1 AND c = $2"),
        (
            "WHERE guild_id IS ? AND x IS NOT ?",
            "WHERE guild_id = $1 AND x <> $2",
        ),
        ("SELECT '?', 'it''s ?' WHERE a = ?", "SELECT '?', 'it''s ?' WHERE a = $1"),
        (
            "INSERT OR IGNORE INTO t (a) VALUES (?)",
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING",
        ),
        ("INSERT INTO jobs (a) VALUES (?)", "INSERT INTO jobs (a) VALUES ($1) RETURNING id"),
        ("WHERE p LIKE ? ESCAPE '\\'", "WHERE p ILIKE $1 ESCAPE '\\'"),
        (
            "SELECT CAST(created_at / 86400 AS INTEGER) AS day",
            "SELECT FLOOR(created_at / 86400)::bigint AS day",
        ),
    ],
)
def test_sqlite_spelling_is_translated(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql


def test_a_none_compared_with_is_becomes_is_null_and_is_not_bound() -> None:
    sql = "WHERE a = ? AND guild_id IS ? AND b IS NOT ? AND c = ?"
    assert translate_for(sql, frozenset({1, 2})) == (
        "WHERE a = $1 AND guild_id IS NULL AND b IS NOT NULL AND c = $2",
        (0, 3),
    )


def test_insert_or_replace_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="ON CONFLICT"):
        translate("INSERT OR REPLACE INTO t (a) VALUES (?)")


def test_every_postgresql_migration_replaces_a_numbered_one() -> None:
    common = migrations()
    ours = migrations("postgresql")
    assert [n for n, _, _ in ours] == [n for n, _, _ in common]


async def test_a_new_database_is_migrated_once_by_processes_starting_together(
    postgres_server: PostgresServer,
) -> None:
    url = await new_postgres_database(postgres_server)
    stores = await asyncio.gather(*(Store.open_url(url) for _ in range(3)))
    try:
        assert {await s.version() for s in stores} == {len(migrations())}
    finally:
        for s in stores:
            await s.close()
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_version") == 1
    finally:
        await conn.close()


async def test_two_processes_claiming_the_same_jobs_get_each_job_once(postgres_url: str) -> None:
    first, second = await Store.open_url(postgres_url), await Store.open_url(postgres_url)
    try:
        ids = [
            (
                await first.jobs.create(
                    NewJob(
                        "m/one",
                        f"cat {n}",
                        {"prompt": f"cat {n}"},
                        n,
                        Requester(),
                        time.time(),
                        status=JobState.WAITING,
                    )
                )
            ).id
            for n in range(40)
        ]
        now = time.time()

        async def take(store: Store, owner: str) -> list[int]:
            won = []
            for job_id in ids:
                if await store.jobs.claim(
                    job_id, owner, now=now, until=now + 30
                ) and await store.jobs.claim_run(job_id, owner, submitted_at=now, until=now + 30):
                    won.append(job_id)
            return won

        a, b = await asyncio.gather(take(first, "a"), take(second, "b"))
        assert sorted(a + b) == ids  # every job run once, by one of them
    finally:
        await first.close()
        await second.close()


def test_the_url_setting_takes_postgresql_urls_and_never_shows_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WIROBOT_DATABASE__URL", "postgresql://bot:s3cret@db:5432/wirobot")
    settings = load_settings()
    assert settings.database.shown_url == "postgresql://bot:***@db:5432/wirobot"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.database)

    monkeypatch.setenv("WIROBOT_DATABASE__URL", "mysql://bot:s3cret@db/wirobot")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "database.url (WIROBOT_DATABASE__URL)" in str(refused.value)
    assert "postgresql://" in str(refused.value) and "s3cret" not in str(refused.value)


def test_masking_keeps_everything_but_the_password() -> None:
    assert (
        mask_url("postgres://u:p@[::1]:5/d?sslmode=require")
        == "postgres://u:***@[::1]:5/d?sslmode=require"
    )
    assert mask_url("postgresql:///wirobot?host=/run/pg") == "postgresql:///wirobot?host=/run/pg"


async def test_a_server_that_refuses_is_one_line_without_the_password(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from bot.runtime import open_store

    monkeypatch.setenv(
        "WIROBOT_DATABASE__URL", postgres_server.url("no_such_db", password="s3cret")
    )
    monkeypatch.setenv("WIROBOT_DATABASE__PATH", f"{tmp_path}/wirobot.db")
    with pytest.raises(ConfigError) as refused:
        await open_store(load_settings())
    message = str(refused.value)
    assert message.startswith("database.url (WIROBOT_DATABASE__URL): cannot use postgresql://")
    assert "no_such_db" in message and "s3cret" not in message and "\n" not in message


async def test_a_job_s_outputs_and_final_fields_commit_together(postgres_url: str) -> None:
    async with await Store.open_url(postgres_url) as store:
        job = await store.jobs.create(NewJob("m/one", "a cat", {}, 1, Requester(), time.time()))
        with pytest.raises(ValueError, match="not updatable"):
            await store.jobs.finish(
                job.id, [Output(0, "a.png", "image/png", 1, "u")], no_such_field=1
            )
        stored = await store.jobs.get(job.id)
        assert stored is not None and stored.outputs == []  # the outputs rolled back too
        await store.jobs.finish(
            job.id, [Output(0, "a.png", "image/png", 1, "u")], status=JobState.SUCCEEDED
        )
        stored = await store.jobs.get(job.id)
        assert stored is not None and len(stored.outputs) == 1


async def test_executemany_writes_every_row(postgres_url: str) -> None:
    async with await Store.open_url(postgres_url) as store:
        conn = store._conn
        await conn.executemany(
            "INSERT INTO tool_details (slug, detail, fetched_at) VALUES (?, ?, ?)",
            [("a/b", "{}", 1.0), ("c/d", "{}", 2.0)],
        )
        assert await store.tools.get_tool_detail("c/d") == {}
