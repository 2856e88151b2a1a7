"""Prometheus metrics: one object holding the collectors, with a small method per event.

Counters and histograms are recorded as things happen (Wiro calls, interactions, jobs ending);
the jobs waiting and at Wiro and the gateway latency are read when Prometheus scrapes.
Each `Metrics` has its own registry, so two bots (or two tests) never share numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.jobs.events import EventKind, Subscription

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Wiro codes worth their own count: 96 concurrency limit, 97 insufficient balance; and 429.
WATCHED_CODES = frozenset({"96", "97", "429"})

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_POSTED_BUCKETS = (2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)

#: Job states that have not reached Wiro yet, and those Wiro holds.
WAITING_STATES = frozenset({"created", "waiting"})
AT_WIRO_STATES = frozenset({"submitted", "queued", "running"})

UnfinishedCounts = list[tuple[str, str, int]]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.wiro_calls = Counter(
            "wirobot_wiro_calls",
            "Wiro API calls by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.wiro_seconds = Histogram(
            "wirobot_wiro_call_seconds",
            "Wiro API call latency",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.wiro_codes = Counter(
            "wirobot_wiro_codes", "Wiro answers with code 96, 97 or HTTP 429", ["code"], registry=r
        )
        self.followed = Counter(
            "wirobot_jobs_followed",
            "Jobs followed at Wiro, by socket or by polling",
            ["mode"],
            registry=r,
        )
        self.finished = Counter(
            "wirobot_jobs_finished",
            "Jobs that ended, by final state and model",
            ["state", "model"],
            registry=r,
        )
        self.spend = Counter(
            "wirobot_spend_usd",
            "Money spent at Wiro in US dollars, by model",
            ["model"],
            registry=r,
        )
        self.posted = Histogram(
            "wirobot_job_posted_seconds",
            "Seconds from /imagine to the images posted",
            buckets=_POSTED_BUCKETS,
            registry=r,
        )
        self.interactions = Counter(
            "wirobot_interactions", "Discord interactions answered, by kind", ["kind"], registry=r
        )
        self.gateway_latency = Gauge(
            "wirobot_discord_gateway_latency_seconds",
            "Discord gateway heartbeat latency",
            registry=r,
        )
        self._unfinished: UnfinishedCounts = []
        r.register(_JobsCollector(self))

    # -- events --------------------------------------------------------------------------------

    def wiro_call(self, path: str, outcome: str, seconds: float) -> None:
        """One HTTP attempt at Wiro; `outcome` is "ok", "429", "code_<n>" or an error name."""
        endpoint = endpoint_of(path)
        self.wiro_calls.labels(endpoint, outcome).inc()
        self.wiro_seconds.labels(endpoint).observe(seconds)
        if outcome == "429":
            self.wiro_code(429)
        elif outcome.startswith("code_"):
            self.wiro_code(outcome.removeprefix("code_"))

    def wiro_code(self, code: int | str) -> None:
        if str(code) in WATCHED_CODES:
            self.wiro_codes.labels(str(code)).inc()

    def followed_by(self, mode: str) -> None:
        """A job's progress is followed by "socket" or "polling"."""
        self.followed.labels(mode).inc()

    def job_finished(self, state: str, model: str, cost: Decimal | None) -> None:
        self.finished.labels(state, model).inc()
        if cost:
            # Prometheus counts in floats; the exact sums live in the database.
            self.spend.labels(model).inc(float(cost))

    def job_posted(self, seconds: float) -> None:
        self.posted.observe(max(0.0, seconds))

    def interaction(self, kind: str) -> None:
        self.interactions.labels(kind).inc()

    def set_gateway_latency(self, source: Callable[[], float]) -> None:
        """Read the latency at scrape time (NaN until the first heartbeat)."""
        self.gateway_latency.set_function(source)

    # -- scrape time ---------------------------------------------------------------------------

    def render(self, unfinished: UnfinishedCounts) -> bytes:
        """The text exposition, with the jobs not yet final as just read from the store."""
        self._unfinished = list(unfinished)
        return generate_latest(self.registry)

    async def count_events(self, subscription: Subscription) -> None:
        """Count every job that ends (runs until cancelled)."""
        with subscription:
            async for event in subscription:
                if event.kind is EventKind.FINISHED:
                    job = event.job
                    self.job_finished(job.status.value, job.model, job.cost)


def endpoint_of(path: str) -> str:
    """ "Run/owner/project" -> "Run" (one label for all models); "Task/Detail" as is."""
    parts = path.strip("/").split("/")
    return parts[0] if parts[0] == "Run" else "/".join(parts[:2])


class _JobsCollector(Collector):
    """Jobs not yet final by state and model, and in total waiting and at Wiro."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counts = self._metrics._unfinished
        by_state = GaugeMetricFamily(
            "wirobot_jobs", "Jobs not yet final, by state and model", labels=["state", "model"]
        )
        waiting = at_wiro = 0
        for state, model, n in counts:
            by_state.add_metric([state, model], n)
            waiting += n if state in WAITING_STATES else 0
            at_wiro += n if state in AT_WIRO_STATES else 0
        yield by_state
        yield GaugeMetricFamily("wirobot_jobs_waiting", "Jobs waiting for a slot", value=waiting)
        yield GaugeMetricFamily("wirobot_jobs_at_wiro", "Jobs Wiro holds", value=at_wiro)
