"""Web benchmark: the gallery, /metrics and /healthz over a large history.

    python bench/web_bench.py [--jobs 100000] [--requests 200]

Fills a temporary database with `--jobs` succeeded jobs (one server, 40 channels, a member
who may see 30 of them), serves the web app on loopback and prints the latency (p50, p95) of
the first gallery page, a page deep in the history (keyset `before`), a prompt search, a job
page, /metrics and /healthz. Targets: pages p95 under 100 ms, /metrics and /healthz under 20 ms
(the prompt search goes through the history's words index; the spend page adds up per-day
totals).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.catalog.catalog import Catalog
from bot.metrics import Metrics
from bot.store import Store
from bot.web.app import WebContext
from bot.web.server import WebServer
from bot.web.signing import LinkClaims, link_url

GUILD = 1000
MODELS = ["wavymulder/portraitplus", "Adel_AI/Comics-Factory-v1", "Hevok/Studio-Trigger"]


async def fill(store: Store, jobs: int) -> None:
    conn = store._conn  # the bench writes in bulk, as no caller of the store would
    now = time.time()
    rows = []
    for n in range(jobs):
        prompt = f"a lighthouse, study {n}" if n % 97 == 0 else f"a cat in a hat, study {n}"
        rows.append(
            (
                "discord",
                GUILD,
                10 + n % 40,
                100 + n % 50,
                MODELS[n % 3],
                prompt,
                json.dumps({"prompt": prompt, "steps": 30, "seed": n}),
                n,
                "succeeded",
                now - (jobs - n),
                now - (jobs - n) + 7,
                4_200_000_000,  # $0.0042 in picodollars
            )
        )
    await conn.executemany(
        "INSERT INTO jobs (source, guild_id, channel_id, user_id, model, prompt, inputs, seed,"
        " status, created_at, finished_at, cost_pico) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    await conn.executemany(
        "INSERT INTO outputs (job_id, position, name, content_type, size, url, path, width,"
        " height) VALUES (?, 0, 'x.png', 'image/png', 10, 'u', NULL, 512, 512)",
        [(n + 1,) for n in range(jobs)],
    )
    await conn.commit()


async def timed(session: aiohttp.ClientSession, url: str, requests: int) -> tuple[float, float]:
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            assert resp.status in (200, 503), (url, resp.status)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


async def main(jobs: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = await Store.open(Path(folder) / "bench.db")
        started = time.perf_counter()
        await fill(store, jobs)
        print(f"filled {jobs} jobs in {time.perf_counter() - started:.1f} s")
        grant = await store.gallery.create_grant(
            guild_id=GUILD,
            user_id=100,
            channels=frozenset(range(10, 40)),
            nsfw_channels=frozenset(),
            from_nsfw=False,
            admin=True,
            lifetime=3600,
        )
        context = WebContext(
            store=store,
            catalog=Catalog.from_seeds(),
            metrics=Metrics(),
            outputs_dir=Path(folder) / "outputs",
            signing_key=await store.gallery.signing_key(),
            public_url="",
            discord_connected=lambda: True,
        )
        server = WebServer(context, host="127.0.0.1", port=0)
        await server.start()
        claims = LinkClaims(grant.id, GUILD, 100, int(grant.expires_at))
        link = link_url(server.url, context.signing_key, claims)
        try:
            async with aiohttp.ClientSession() as session:
                for name, url in (
                    ("gallery, first page", link),
                    ("gallery, deep page", f"{link}?before={jobs // 10}"),
                    ("gallery, by member", f"{link}?member=110"),
                    ("gallery, prompt search", f"{link}?q=lighthouse"),
                    ("job page", f"{link}job/{jobs // 80 * 40 + 1}"),
                    ("spend page", f"{link}spend"),
                    ("/metrics", f"{server.url}/metrics"),
                    ("/healthz", f"{server.url}/healthz"),
                ):
                    p50, p95 = await timed(session, url, requests)
                    print(f"{name:24} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
        finally:
            await server.stop()
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.requests))
