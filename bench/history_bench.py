"""History benchmark: a million jobs of history, 1,000 servers, 50,000 members.

    python bench/history_bench.py [--jobs 1000000] [--samples 200] [--rebuild]

Builds a database the way the bot wrote it before migration 0002 (schema 0001 only: prompt
twice, interaction tokens kept), once, cached in `bench/.cache/`; copies it, migrates it
through the store (timed), and times every query /history, /settings show and start-up make,
through the store's own methods: p50 and p95 beside the target (p95 under 20 ms; start-up's
database work under 200 ms), the query plans (no `SCAN jobs`), and bytes per job on disk
(target under 600) for the old database and for the migrated one compacted.

Servers and members are skewed as in life (a few large servers make most jobs), so the
heaviest queries are sampled most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.discord_views.history import COUNT_CAP, FILTERED_COUNT_CAP
from bot.store import HistoryQuery, Store
from bot.store.database import migrations

CACHE = Path(__file__).resolve().parent / ".cache"
TARGET_MS = 20.0
STARTUP_TARGET_MS = 200.0
BYTES_TARGET = 600
MODELS = [
    "wavymulder/portraitplus",
    "Adel_AI/Comics-Factory-v1",
    "ArsMachina/Ars-Niji-Style-v1",
    "prompthero/openjourney",
    "stabilityai/stable-diffusion-2-1",
]
NEGATIVES = [f"blurry, low quality, deformed, style {n}" for n in range(30)]
RARE = "xylophone"  # in about one prompt in 20,000
COMMON = "portrait"  # in about one prompt in 8


def _vocabulary(rng: random.Random) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(3000)}
    words -= {RARE, COMMON}
    return sorted(words)


def _prompt(rng: random.Random, vocabulary: list[str], weights: list[float]) -> str:
    words = rng.choices(vocabulary, weights, k=rng.randint(8, 20))
    if rng.random() < 1 / 8:
        words.insert(rng.randrange(len(words)), COMMON)
    if rng.random() < 1 / 20_000:
        words.insert(rng.randrange(len(words)), RARE)
    return " ".join(words)


def build(path: Path, jobs: int, guilds: int, members: int, seed: int = 1) -> None:
    """Write `jobs` jobs with schema 0001 only, as the code before 0002 wrote them."""
    rng = random.Random(seed)
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    _, _, first = migrations()[0]
    conn.executescript(first)
    conn.execute("PRAGMA user_version = 1")

    vocabulary = _vocabulary(rng)
    word_weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    guild_weights = [1 / (rank + 1) ** 0.8 for rank in range(guilds)]
    # Members spread over servers in proportion to their activity; channels 3 to 30 each.
    total_weight = sum(guild_weights)
    member_ranges = []
    start = 10**17
    for weight in guild_weights:
        count = max(5, round(members * weight / total_weight))
        member_ranges.append((start, count))
        start += count
    channels = [rng.randint(3, 30) for _ in range(guilds)]
    guild_ids = [10**18 + g * 1000 for g in range(guilds)]

    now = time.time()
    begin = now - 365 * 86400
    step = (now - 3600 - begin) / jobs
    job_rows: list[tuple[Any, ...]] = []
    output_rows: list[tuple[Any, ...]] = []
    conn.execute("BEGIN")
    for n in range(1, jobs + 1):
        created = begin + n * step
        cli = rng.random() < 0.02
        g = rng.choices(range(guilds), guild_weights)[0]
        first_member, count = member_ranges[g]
        prompt = _prompt(rng, vocabulary, word_weights)
        seed_value = rng.randrange(2**32)
        model = rng.choice(MODELS)
        # Most people keep the defaults; some change a thing or two.
        inputs = {
            "prompt": prompt,
            "negative_prompt": "blurry, low quality, deformed",
            "samples": 1,
            "steps": 30,
            "guidance": 7.5,
            "scheduler": "EulerDiscreteScheduler",
            "width": 512,
            "height": 768,
            "seed": seed_value,
        }
        if rng.random() < 0.3:
            inputs["negative_prompt"] = rng.choice(NEGATIVES)
            inputs["steps"] = rng.choice([20, 25, 30, 40, 50])
            inputs["guidance"] = rng.choice([5.0, 6.0, 7.5, 9.0])
        if rng.random() < 0.2:
            inputs["width"], inputs["height"] = rng.choice([(768, 512), (1024, 1024)])
        roll = rng.random()
        status = (
            "succeeded"
            if roll < 0.9
            else "failed"
            if roll < 0.95
            else "cancelled"
            if roll < 0.99
            else "timed_out"
        )
        if n > jobs - 20:
            status = rng.choice(["waiting", "queued", "running"])
        final = status in ("succeeded", "failed", "cancelled", "timed_out")
        task_id = str(1_000_000 + n)
        submitted = created + 0.2
        finished = created + rng.uniform(8, 40) if final else None
        token = "".join(
            rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", k=180)
        )
        job_rows.append(
            (
                n,
                "cli" if cli else "discord",
                None if cli else guild_ids[g],
                None if cli else guild_ids[g] + 1 + rng.randrange(channels[g]),
                None if cli else first_member + min(int(rng.paretovariate(1.2)) - 1, count - 1),
                model,
                prompt,
                json.dumps(inputs),
                seed_value,
                status,
                "task_postprocess_end" if final else "task_start",
                task_id,
                "".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", k=30)),
                0,
                created,
                submitted,
                created + 1,
                finished,
                finished - submitted if finished else None,
                0.0048 if status == "succeeded" else None,
                "Out of memory" if status == "failed" else None,
                "task_failed" if status == "failed" else None,
                None if cli else 1_100_000_000_000_000_000 + n * 2,
                None if cli else token,
                None if cli else created,
                None if cli or not final else 1_100_000_000_000_000_001 + n * 2,
                None if cli or not final or n > jobs - 40 else finished,
            )
        )
        if status == "succeeded":
            name = f"{n}-00-0.png"
            output_rows.append(
                (
                    n,
                    0,
                    name,
                    "image/png",
                    rng.randint(300_000, 900_000),
                    f"https://cdn1.wiro.ai/{rng.getrandbits(128):032x}/0.png",
                    f"data/outputs/{name}",
                    512,
                    768,
                )
            )
        if len(job_rows) >= 50_000:
            _flush(conn, job_rows, output_rows)
    _flush(conn, job_rows, output_rows)
    conn.execute("COMMIT")
    conn.close()
    tmp.rename(path)


def _flush(
    conn: sqlite3.Connection, jobs: list[tuple[Any, ...]], outputs: list[tuple[Any, ...]]
) -> None:
    conn.executemany(
        "INSERT INTO jobs (id, source, guild_id, channel_id, user_id, model, prompt, inputs, seed,"
        " status, wiro_status, task_id, task_token, cancel_requested, created_at, submitted_at,"
        " started_at, finished_at, elapsed_seconds, cost, error, error_kind, status_message_id,"
        " interaction_token, interaction_at, result_message_id, posted_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        jobs,
    )
    conn.executemany(
        "INSERT INTO outputs (job_id, position, name, content_type, size, url, path, width,"
        " height) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        outputs,
    )
    jobs.clear()
    outputs.clear()


# -- measuring ----------------------------------------------------------------------------------


async def timed(samples: int, make: Callable[[int], Awaitable[Any]]) -> list[float]:
    times = []
    for i in range(samples):
        started = time.perf_counter()
        await make(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def line(name: str, times: list[float], target: float = TARGET_MS) -> bool:
    times = sorted(times)
    p50 = statistics.median(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    ok = p95 < target
    print(
        f"  {name:<44} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  target p95 < {target:.0f} ms"
        f"  {'ok' if ok else 'MISSED'}"
    )
    return ok


def plans(path: Path) -> list[str]:
    """The plans of the hot queries, as the store writes them; any `SCAN jobs` is a miss."""
    from bot.store.jobs import _FINAL_SQL, _JOB_COLUMNS, _SPEND_PART_SQL, _history_sql
    from bot.store.spend import _CHARGE
    from bot.store.windows import member_since

    conn = sqlite3.connect(path)
    guild, user = conn.execute(
        "SELECT guild_id, user_id FROM jobs WHERE guild_id IS NOT NULL LIMIT 1"
    ).fetchone()
    queries: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for name, query in {
        "history mine": HistoryQuery(guild_id=guild, user_id=user),
        "history server": HistoryQuery(guild_id=guild),
        "history server, some channels": HistoryQuery(
            guild_id=guild, channel_ids=frozenset({guild + 1, guild + 2})
        ),
        "history server, search": HistoryQuery(guild_id=guild, search=RARE),
        "history server, next page": HistoryQuery(guild_id=guild, before_id=500_000),
    }.items():
        sql, params = _history_sql(query, _JOB_COLUMNS, order="DESC")
        queries[name] = (sql, (*params, 11))
        sql, params = _history_sql(query, "1", order=None)
        queries[name + " (count)"] = (f"SELECT COUNT(*) FROM ({sql} LIMIT 1000)", params)
    queries["unfinished"] = (f"SELECT * FROM jobs WHERE status NOT IN {_FINAL_SQL} ORDER BY id", ())
    queries["unposted"] = (
        f"SELECT * FROM jobs WHERE status IN {_FINAL_SQL} AND posted_at IS NULL"
        " AND source = 'discord' ORDER BY id",
        (),
    )
    now = time.time()
    queries["spend, the day 'since' cuts"] = (_SPEND_PART_SQL, (guild, now - 3600, now))
    queries["budget, server's month"] = (
        f"SELECT SUM({_CHARGE}) FROM jobs WHERE guild_id = ? AND created_at >= ?"
        " AND created_at < ?",
        (guild, now - 30 * 86400, now),
    )
    # A member's windows must walk the member's index, not the server's window.
    member: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for name, until in (("daily limit", None), ("member budget", now)):
        window, params = member_since(guild, user, now - 86400, until)
        member[f"member window, {name}"] = (f"SELECT COUNT(*) FROM jobs WHERE {window}", params)
    queries.update(member)
    missed = []
    for name, (sql, params) in queries.items():
        detail = " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        bad = bool(re.search(r"SCAN jobs(?!_search| USING INDEX jobs_un)|TEMP B-TREE", detail))
        bad |= name in member and "USING INDEX jobs_by_member" not in detail
        print(f"  {name:<36} {detail}{'  <- MISSED' if bad else ''}")
        if bad:
            missed.append(name)
    conn.close()
    return missed


async def run(jobs: int, samples: int, rebuild: bool) -> bool:
    CACHE.mkdir(exist_ok=True)
    old = CACHE / f"history-{jobs}-v1.db"
    if rebuild:
        old.unlink(missing_ok=True)
    if not old.exists():
        print(f"building {jobs:,} jobs in {old} (once) ...", flush=True)
        started = time.perf_counter()
        build(old, jobs, guilds=1000, members=50_000)
        print(f"  built in {time.perf_counter() - started:.1f} s")
    old_bytes = old.stat().st_size
    work = CACHE / "history-work.db"
    _fresh_copy(old, work)
    ok = True

    started = time.perf_counter()
    store = await Store.open(work)
    migrate_s = time.perf_counter() - started
    print(
        f"\nmigration to the current schema on {jobs:,} jobs: {migrate_s:.1f} s"
        " (compaction included)"
    )
    with sqlite3.connect(work) as check:
        kept = check.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        outputs = check.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]
    print(f"  jobs kept: {kept:,} of {jobs:,}; outputs: {outputs:,}")
    ok &= kept == jobs

    rng = random.Random(2)
    conn = sqlite3.connect(work)
    by_activity = [
        tuple(r)
        for r in conn.execute(
            "SELECT guild_id, user_id, channel_id FROM jobs"
            " WHERE guild_id IS NOT NULL AND id % 97 = 0"
        )
    ]
    channels: dict[int, list[int]] = {}
    for g, _, c in by_activity:
        channels.setdefault(g, []).append(c)
    conn.close()
    picks = [rng.choice(by_activity) for _ in range(samples)]  # weighted by activity
    big = max(channels, key=lambda g: len(channels[g]))

    def visible(g: int) -> frozenset[int]:
        known = sorted(set(channels[g]))
        return frozenset(known[: max(1, len(known) * 2 // 3)])  # a third hidden from members

    j = store.jobs
    print(
        f"\nqueries ({samples} samples each, servers picked by activity; biggest server "
        f"{len(channels[big]) * 97:,} jobs)"
    )

    async def page(query: HistoryQuery) -> None:
        # As /history does it: the page, and a count that stops at the view's cap.
        await j.history(query)
        filtered = query.search or query.model
        await j.count_history(query, cap=FILTERED_COUNT_CAP if filtered else COUNT_CAP)

    for name, make in {
        "/history mine, page 1 + count": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], user_id=picks[i][1], limit=11)
        ),
        "/history server (admin), page 1 + count": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], limit=11)
        ),
        "/history server (member), page 1 + count": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], limit=11, channel_ids=visible(picks[i][0]))
        ),
        "/history server (member), deep page + count": lambda i: page(
            HistoryQuery(
                guild_id=picks[i][0],
                limit=11,
                channel_ids=visible(picks[i][0]),
                before_id=jobs // 50,
            )
        ),
        "/history server, previous page": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], limit=11, after_id=jobs // 2)
        ),
        "/history server, model filter + count": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], limit=11, model=MODELS[i % 5])
        ),
        f"/history server, search rare '{RARE}' + count": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], limit=11, search=RARE)
        ),
        f"/history server, search common '{COMMON}' + count": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], limit=11, search=COMMON)
        ),
        "/history mine, search + count": lambda i: page(
            HistoryQuery(guild_id=picks[i][0], user_id=picks[i][1], limit=11, search=COMMON)
        ),
        "/history server, biggest server, member, page 1": lambda i: page(
            HistoryQuery(guild_id=big, limit=11, channel_ids=visible(big))
        ),
        "/history job:<id>": lambda i: j.get(rng.randrange(1, jobs)),
        "/settings show: spend, all time + 30 days": lambda i: _spend(store, picks[i][0]),
        "/settings show: spend, biggest server": lambda i: _spend(store, big),
        "/settings show: budgets, this month's spend": lambda i: _month(store, picks[i][0]),
        "/settings show: budgets, biggest server": lambda i: _month(store, big),
        "/imagine: a member's day and month (limit, budgets)": lambda i: _member(
            store, picks[i][0], picks[i][1]
        ),
    }.items():
        ok &= line(name, await timed(samples, make))

    print("\nstart-up database work")
    total = 0.0
    for name, call in {
        "typical durations": lambda: j.typical_durations(),
        "unfinished jobs (engine)": lambda: j.unfinished(),
        "unfinished + unposted (status updater)": lambda: _both(store),
        "forget expired interaction tokens": lambda: j.forget_interaction_tokens(
            issued_before=time.time() - 900
        ),
    }.items():
        started = time.perf_counter()
        await call()
        ms = (time.perf_counter() - started) * 1000
        total += ms
        print(f"  {name:<44} {ms:7.2f} ms")
    print(
        f"  {'total':<44} {total:7.2f} ms  target < {STARTUP_TARGET_MS:.0f} ms  "
        f"{'ok' if total < STARTUP_TARGET_MS else 'MISSED'}"
    )
    ok &= total < STARTUP_TARGET_MS
    await store.close()

    print("\nquery plans")
    ok &= not plans(work)

    new_bytes = work.stat().st_size
    print("\nbytes per job on disk (jobs, outputs, indexes, search index)")
    print(f"  before 0002: {old_bytes / jobs:6.0f}  ({old_bytes / 2**20:,.0f} MB)")
    print(
        f"  migrated (compacted by the migration): {new_bytes / jobs:6.0f}  "
        f"({new_bytes / 2**20:,.0f} MB)  target < {BYTES_TARGET}  "
        f"{'ok' if new_bytes / jobs < BYTES_TARGET else 'MISSED'}"
    )
    ok &= new_bytes / jobs < BYTES_TARGET
    print("\nall targets met" if ok else "\nTARGETS MISSED")
    return ok


def _fresh_copy(source: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(source, target)


async def _spend(store: Store, guild_id: int) -> None:
    await store.jobs.spend(guild_id=guild_id)
    await store.jobs.spend(guild_id=guild_id, since=time.time() - 30 * 86400)


async def _month(store: Store, guild_id: int) -> None:
    now = time.time()
    await store.spend.committed(guild_id=guild_id, since=now - 30 * 86400, until=now + 1)


async def _member(store: Store, guild_id: int, user_id: int) -> None:
    # What admission asks of a member with a daily limit and both member budgets.
    now = time.time()
    day = now - 86400
    await store.jobs.count_started_since(user_id=user_id, guild_id=guild_id, since=day)
    await store.jobs.oldest_started_since(user_id=user_id, guild_id=guild_id, since=day)
    for since in (now - 30 * 86400, day):
        await store.spend.committed(guild_id=guild_id, since=since, until=now + 1, user_id=user_id)


async def _both(store: Store) -> None:
    await store.jobs.unfinished()
    await store.jobs.unposted()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="build the cached database again")
    args = parser.parse_args()
    return 0 if asyncio.run(run(args.jobs, args.samples, args.rebuild)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
