"""/healthz for Docker and /metrics for Prometheus, read back with prometheus-client's parser
and checked against the jobs that ran."""

from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families

from bot.jobs.job import JobState
from tests.discord.conftest import Harness
from tests.web.conftest import Site

PORTRAIT = "wavymulder/portraitplus"


async def metrics(site: Site) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    page = await site.get("/metrics")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_healthy_when_discord_the_database_and_the_loop_all_answer(site: Site) -> None:
    page = await site.get("/healthz")
    assert page.status == 200
    body = json.loads(page.text)
    assert body["status"] == "ok"
    assert body["checks"] == {"discord": "ok", "database": "ok", "event_loop": "ok"}


async def test_503_naming_the_database_when_it_is_gone(site: Site) -> None:
    await site.harness.runtime.store.close()
    page = await site.get("/healthz")
    assert page.status == 503
    body = json.loads(page.text)
    assert body["status"] == "failing"
    assert body["failing"] == ["database"]
    assert body["checks"]["database"].startswith("not answering")


async def test_503_naming_discord_when_the_gateway_disconnects(site: Site) -> None:
    shards = list(site.harness.bot.shards.values())  # the bot is auto-sharded
    assert shards
    await shards[0].disconnect()
    page = await site.get("/healthz")
    assert page.status == 503
    assert json.loads(page.text)["failing"] == ["discord"]


async def run_job(h: Harness, prompt: str) -> None:
    await h.alice.slash(h.channel, "imagine", prompt=prompt)
    job = await h.last_job()
    await h.finish(job)


async def test_metrics_count_the_jobs_that_ran(site: Site) -> None:
    h = site.harness
    await run_job(h, "a lighthouse")
    await run_job(h, "a harbour")
    h.wiro.next_outcome("failed")
    await run_job(h, "a storm")
    # One more, left at Wiro: it shows as a job Wiro holds.
    h.wiro.fail_next("run", "code96")
    await h.alice.slash(h.channel, "imagine", prompt="a quiet sea")
    held = await h.last_job()
    await h.queued(held)

    stored = [await h.runtime.store.jobs.get(n) for n in range(1, 5)]
    finished = [job for job in stored if job and job.status.is_final]
    assert [job.status for job in finished] == [
        JobState.SUCCEEDED,
        JobState.SUCCEEDED,
        JobState.FAILED,
    ]
    samples = await metrics(site)

    finished_total = "wirobot_jobs_finished_total"
    assert value(samples, finished_total, state="succeeded", model=PORTRAIT) == 2
    assert value(samples, finished_total, state="failed", model=PORTRAIT) == 1
    spent = sum(job.cost or 0 for job in finished)
    assert spent > 0
    assert abs(value(samples, "wirobot_spend_usd_total", model=PORTRAIT) - float(spent)) < 1e-9

    assert value(samples, "wirobot_jobs", state="queued", model=PORTRAIT) == 1
    assert value(samples, "wirobot_jobs_at_wiro") == 1
    assert value(samples, "wirobot_jobs_waiting") == 0

    # Four tasks created, and one Run refused with code 96 (then sent again).
    assert len(h.wiro.runs) == 4
    assert value(samples, "wirobot_wiro_calls_total", endpoint="Run", outcome="ok") == 4
    assert value(samples, "wirobot_wiro_calls_total", endpoint="Run", outcome="code_96") == 1
    assert value(samples, "wirobot_wiro_codes_total", code="96") == 1
    assert value(samples, "wirobot_wiro_call_seconds_count", endpoint="Run") == 5
    assert value(samples, "wirobot_wiro_call_seconds_count", endpoint="Task/Detail") >= 3

    assert value(samples, "wirobot_job_posted_seconds_count") == 3
    assert value(samples, "wirobot_interactions_total", kind="/imagine") == 4
    assert ("wirobot_discord_gateway_latency_seconds", ()) in samples
