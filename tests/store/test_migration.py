"""Migrations 0002 onwards on a database written by the code of schema 0001: no job, input or
output is lost, expired interaction tokens and finished tasks' socket tokens go, and the
migrated jobs can be searched."""

from __future__ import annotations

import json
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

from bot.jobs.job import JobState, Requester
from bot.store import HistoryQuery, NewJob, Store
from bot.store.database import migrations

GUILD = 100


def old_database(path: Path) -> list[dict[str, object]]:
    """Schema 0001 only, jobs written the way the code of that time wrote them: the prompt
    also inside `inputs`, interaction tokens kept, outputs with their files."""
    conn = sqlite3.connect(path)
    _, _, first = migrations()[0]
    conn.executescript(first)
    conn.execute("PRAGMA user_version = 1")
    now = time.time()
    jobs: list[dict[str, object]] = []
    for n in range(1, 31):
        inputs = {
            "prompt": f"a lighthouse number {n}, ünïcode “quotes”",
            "negative_prompt": "fog" if n % 3 else "rain",
            "samples": 2,
            "steps": 30,
            "guidance": 7.5,
            "seed": 1000 + n,
            "width": 512,
        }
        if n == 7:  # a prompt input that differs from the column: kept as it was
            inputs["prompt"] = "something else"
        if n == 8:  # a seed written as text: stays text
            inputs["seed"] = str(1000 + n)
        status = "succeeded" if n % 5 else "failed"
        if n == 30:
            status = "running"
        row = {
            "id": n,
            "source": "cli" if n == 29 else "discord",
            "guild_id": None if n == 29 else GUILD + n % 2,
            "channel_id": None if n == 29 else 1000 + n % 4,
            "user_id": None if n == 29 else 1 + n % 3,
            "model": "wavymulder/portraitplus",
            "prompt": f"a lighthouse number {n}, ünïcode “quotes”",
            "inputs": json.dumps(inputs),
            "seed": 1000 + n,
            "status": status,
            "wiro_status": "task_postprocess_end" if n != 30 else "task_start",
            "task_id": str(5000 + n),
            "task_token": f"token{n}",
            "cancel_requested": 0,
            "created_at": now - 86400 + n,
            "submitted_at": now - 86400 + n + 1,
            "started_at": now - 86400 + n + 2,
            "finished_at": now - 86400 + n + 20 if status != "running" else None,
            "elapsed_seconds": 19.0 if status != "running" else None,
            "cost": 0.0048 if status == "succeeded" else None,
            "error": "Out of memory" if status == "failed" else None,
            "error_kind": "task_failed" if status == "failed" else None,
            "status_message_id": 9000 + n,
            # Job 30 was asked for a minute ago: its token still works.
            "interaction_token": f"secret-interaction-token-{n}",
            "interaction_at": now - 60 if n == 30 else now - 86400 + n,
            "result_message_id": 9500 + n if status != "running" else None,
            "posted_at": now - 86400 + n + 21 if status != "running" else None,
        }
        columns = ", ".join(row)
        conn.execute(
            f"INSERT INTO jobs ({columns}) VALUES ({', '.join('?' for _ in row)})",
            tuple(row.values()),
        )
        if status == "succeeded":
            for position in range(2):
                conn.execute(
                    "INSERT INTO outputs (job_id, position, name, content_type, size, url, path,"
                    " width, height) VALUES (?, ?, ?, 'image/png', ?, ?, ?, 512, 512)",
                    (
                        n,
                        position,
                        f"{n}-0{position}-image.png",
                        100 + n,
                        f"https://cdn1.wiro.ai/{n}/{position}.png",
                        f"data/outputs/{n}-0{position}-image.png",
                    ),
                )
        jobs.append({**row, "inputs": inputs})
    conn.commit()
    conn.close()
    return jobs


async def test_every_job_and_output_survives_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    written = old_database(path)

    async with await Store.open(path) as store:
        for old in written:
            job = await store.jobs.get(int(str(old["id"])))
            assert job is not None
            assert job.prompt == old["prompt"]
            assert job.inputs == old["inputs"]
            assert list(job.inputs) == list(old["inputs"])  # options keep their order
            assert job.seed == old["seed"]
            assert job.status is JobState(old["status"])
            assert (job.user_id, job.guild_id, job.channel_id) == (
                old["user_id"],
                old["guild_id"],
                old["channel_id"],
            )
            for name in (
                "task_id", "created_at", "submitted_at",
                "started_at", "finished_at", "elapsed_seconds", "error",
                "status_message_id", "result_message_id", "posted_at",
            ):  # fmt: skip
                assert getattr(job, name) == old[name], name
            # A finished job's socket token (a secret) and Wiro's finer status go (0008);
            # the running job keeps both.
            kept = old["status"] == "running"
            for name in ("task_token", "wiro_status"):
                assert getattr(job, name) == (old[name] if kept else None), name
            # Money became exact: the old REAL cost reads back as the Decimal it meant.
            assert job.cost == (None if old["cost"] is None else Decimal(str(old["cost"])))
            expected_outputs = 2 if old["status"] == "succeeded" else 0
            assert [o.position for o in job.outputs] == list(range(expected_outputs))
            for output in job.outputs:
                assert output.path == f"data/outputs/{job.id}-0{output.position}-image.png"
                assert output.size == 100 + job.id
                assert output.url == f"https://cdn1.wiro.ai/{job.id}/{output.position}.png"

        # Tokens older than Discord's 15 minutes are gone; the running job's stays.
        running = await store.jobs.get(30)
        assert running is not None
        assert running.interaction_token == "secret-interaction-token-30"
        finished = await store.jobs.get(1)
        assert finished is not None
        assert finished.interaction_token is None

        # Migrated jobs are found by search, and start-up finds the unfinished one.
        found = await store.jobs.history(HistoryQuery(guild_id=GUILD, search="number 12"))
        assert [j.id for j in found] == [12]
        assert [j.id for j in await store.jobs.unfinished()] == [30]

        # The spend per server is what it was.
        for guild in (GUILD, GUILD + 1, None):
            mine = [j for j in written if j["guild_id"] == guild]
            jobs, cost = await store.jobs.spend(guild_id=guild)
            assert jobs == len(mine)
            # Old REAL costs become exact picodollars; the sum matches to the picodollar.
            expected = sum(Decimal(str(j["cost"] or 0)) for j in mine)
            assert abs(cost - expected) < Decimal("1e-11")

        # Jobs made after the migration join the old ones.
        assert await store.jobs.count_history(HistoryQuery(guild_id=GUILD)) == 15
        new = await store.jobs.create(
            NewJob(
                model="wavymulder/portraitplus",
                prompt="a new lighthouse",
                inputs={"prompt": "a new lighthouse", "negative_prompt": "fog", "seed": 5},
                seed=5,
                requester=Requester(user_id=1, guild_id=GUILD, channel_id=1000),
                created_at=time.time(),
            )
        )
        assert await store.jobs.count_history(HistoryQuery(guild_id=GUILD)) == 16
        assert [j.id for j in await store.jobs.history(HistoryQuery(search="lighthouse"))][:2] == [
            new.id,
            30,
        ]

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    stored = "".join(row[0] for row in conn.execute("SELECT inputs FROM jobs"))
    assert "lighthouse" not in stored  # the prompt is stored once now
    conn.close()


async def test_the_space_the_migration_frees_is_given_back(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    _, _, first = migrations()[0]
    conn.executescript(first)
    conn.execute("PRAGMA user_version = 1")
    inputs = {"negative_prompt": "blurry, low quality, deformed " * 4, "steps": 30}
    conn.executemany(
        "INSERT INTO jobs (model, prompt, inputs, seed, status, created_at, interaction_token,"
        " interaction_at) VALUES ('m/x', ?, ?, 1, 'succeeded', 1000.0, ?, 1000.0)",
        [
            (f"prompt {n}", json.dumps({"prompt": f"prompt {n}", **inputs}), "t" * 180)
            for n in range(12000)
        ],
    )
    conn.commit()
    conn.close()
    before = path.stat().st_size

    async with await Store.open(path) as store:
        assert await store.jobs.count_history(HistoryQuery(), cap=None) == 12000

    assert path.stat().st_size < before / 2


async def test_finished_jobs_written_before_0008_lose_their_socket_tokens(tmp_path: Path) -> None:
    """A database at schema 0007 (yesterday's code kept every task's socket token): after the
    migration only the running job has its token and Wiro status; every job is still there."""
    path = tmp_path / "v7.db"
    conn = sqlite3.connect(path)
    for number, _, sql in migrations()[:7]:
        conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    for n, status in enumerate(("succeeded", "failed", "cancelled", "timed_out", "running"), 1):
        conn.execute(
            "INSERT INTO jobs (id, model, prompt, inputs, seed, status, wiro_status, task_id,"
            " task_token, created_at) VALUES (?, 'm/x', ?, '{}', 1, ?, 'task_start', ?, ?, 1.0)",
            (n, f"prompt {n}", status, f"t{n}", f"socket-token-{n}"),
        )
    conn.commit()
    conn.close()

    async with await Store.open(path) as store:
        assert await store.version() == len(migrations())
        jobs = [await store.jobs.get(n) for n in range(1, 6)]
    assert [j.task_id for j in jobs if j is not None] == ["t1", "t2", "t3", "t4", "t5"]
    assert [(j.task_token, j.wiro_status) for j in jobs if j is not None] == [
        (None, None),
        (None, None),
        (None, None),
        (None, None),
        ("socket-token-5", "task_start"),
    ]


async def test_a_database_at_0009_keeps_every_job_and_cost_without_the_real_cost_column(
    tmp_path: Path,
) -> None:
    """Migration 0010 drops the REAL `cost` (nobody reads it) and the member-time index: every
    job stays, its exact cost too, and a member's windows count as before."""
    path = tmp_path / "v9.db"
    conn = sqlite3.connect(path)
    for number, _, sql in migrations()[:9]:
        conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;")
    now = time.time()
    for n in range(1, 7):
        conn.execute(
            "INSERT INTO jobs (id, guild_id, channel_id, user_id, model, prompt, inputs, seed,"
            " status, task_id, created_at, cost, cost_pico)"
            " VALUES (?, 5, 6, ?, 'm/x', ?, '{}', 1, 'succeeded', 't', ?, ?, ?)",
            (n, 7 if n % 2 else 8, f"prompt {n}", now - n * 3600, n * 0.001, n * 10**9),
        )
    conn.commit()
    conn.close()

    async with await Store.open(path) as store:
        assert await store.version() == len(migrations())
        jobs = [await store.jobs.get(n) for n in range(1, 7)]
        assert [j.cost for j in jobs if j is not None] == [Decimal(n) / 1000 for n in range(1, 7)]
        # Jobs 1, 3 and 5 are member 7's, begun 1, 3 and 5 hours ago.
        assert (
            await store.jobs.count_started_since(user_id=7, guild_id=5, since=now - 4 * 3600) == 2
        )
        spent = await store.spend.committed(guild_id=5, since=0, until=now, user_id=7)
        assert spent == Decimal("0.009")
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        indexes = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert "cost" not in columns and "cost_pico" in columns
    assert "jobs_spend_by_member" not in indexes and "jobs_by_guild" in indexes
