"""What a run will cost before it runs, from what Wiro tells (shared/wiro-api.md, Pricing).

In order: the `dynamicprice` entry whose `inputs` match the run's inputs, computed by its
method; else Tool/Detail's `approximatelycost`; else the median cost of this model's recent jobs
of a similar size; else unknown. Methods:

- `cpr`: the price, per request.
- `cpo`: the price per output file, times the outputs asked for (`samples`, else 1).
- `cp-pixel`: per output, the price for the first 1024x1024 tier of its pixels plus
  `priceExtra` (the price again when absent) for each further tier begun; times the outputs.
- `cps`: the price per second times the seconds this model's recent jobs took; without any,
  the rule is passed over (Wiro's `approximatelycost` is that same estimate).
- `cpt` (per token) and the audio, video and prompt-length methods do not fit an image model's
  inputs: passed over, so the next source answers.

Tool/Detail is read for every model, seed models too, kept in the database and read again
once a day; when Wiro cannot be reached the kept answer serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from bot.catalog.catalog import Catalog, ToolDetailSource
from bot.catalog.spec import ModelSpec
from bot.catalog.validation import to_wire
from bot.money import usd
from bot.wiro.exceptions import WiroError
from bot.wiro.types import PriceRule

log = logging.getLogger(__name__)

DAY = 86_400.0
TIER_PIXELS = 1024 * 1024


class PriceSource(StrEnum):
    RULE = "dynamicprice"
    APPROXIMATE = "approximatelycost"
    HISTORY = "history"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Price:
    """A run's price before it runs; `amount` None when nothing tells it."""

    amount: Decimal | None
    source: PriceSource = PriceSource.UNKNOWN
    method: str | None = None

    @property
    def words(self) -> str:
        """What a person reads: "about $0.01", or "unknown"."""
        return "unknown" if self.amount is None else f"about {usd(self.amount)}"


UNKNOWN = Price(None)


@dataclass(frozen=True, slots=True)
class ModelPricing:
    """What Tool/Detail said about a model's price, and when it said it."""

    rules: tuple[PriceRule, ...] = ()
    approximate: Decimal | None = None
    fetched_at: float = 0.0


def estimate(
    wire_inputs: Mapping[str, Any],
    pricing: ModelPricing | None,
    *,
    seconds: float | None = None,
    history: Decimal | None = None,
) -> Price:
    """The price of one run with these inputs (Wiro's field names, as in the Run body)."""
    if pricing is not None:
        rule = matching_rule(pricing.rules, wire_inputs)
        if rule is not None:
            amount = rule_price(rule, wire_inputs, seconds=seconds)
            if amount is not None:
                return Price(amount, PriceSource.RULE, rule.method)
        if pricing.approximate is not None:
            return Price(pricing.approximate, PriceSource.APPROXIMATE)
    if history is not None:
        return Price(history, PriceSource.HISTORY)
    return UNKNOWN


def matching_rule(rules: Iterable[PriceRule], wire_inputs: Mapping[str, Any]) -> PriceRule | None:
    """The entry whose `inputs` all equal the run's; the most specific one when several do
    (`{}`, the flat price, matches every run)."""
    best: PriceRule | None = None
    for rule in rules:
        matches = all(_same(wire_inputs.get(k), v) for k, v in rule.inputs.items())
        if matches and (best is None or len(rule.inputs) > len(best.inputs)):
            best = rule
    return best


def rule_price(
    rule: PriceRule, wire_inputs: Mapping[str, Any], *, seconds: float | None = None
) -> Decimal | None:
    """One rule's price for a run; None for a method this bot cannot foresee."""
    outputs = Decimal(_whole(wire_inputs.get("samples"), 1))
    match rule.method:
        case "cpr":
            return rule.price
        case "cpo":
            return rule.price * outputs
        case "cp-pixel":
            width = _whole(wire_inputs.get("width"), 1024)
            height = _whole(wire_inputs.get("height"), 1024)
            tiers = max(1, math.ceil(width * height / TIER_PIXELS))
            extra = rule.extra if rule.extra is not None else rule.price
            return (rule.price + extra * (tiers - 1)) * outputs
        case "cps":
            if seconds is None or seconds <= 0:
                return None
            # Whole milliseconds: the estimate is a float; the money stays Decimal.
            return rule.price * Decimal(round(seconds * 1000)) / 1000
    return None


def similar_pixels(wire_inputs: Mapping[str, Any]) -> int:
    """A run's size for comparing with past jobs: output pixels in all (width x height x
    samples)."""
    width = _whole(wire_inputs.get("width"), 1024)
    height = _whole(wire_inputs.get("height"), 1024)
    return width * height * _whole(wire_inputs.get("samples"), 1)


def _same(given: Any, wanted: Any) -> bool:
    if given is None:
        return False
    if isinstance(wanted, bool) or isinstance(given, bool):
        return str(given).lower() == str(wanted).lower()
    try:
        return Decimal(str(given)) == Decimal(str(wanted))
    except ArithmeticError:
        return str(given).strip() == str(wanted).strip()


def _whole(value: Any, default: int) -> int:
    try:
        number = int(float(str(value)))
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


# -- the price book: cached Tool/Detail prices, read again daily ------------------------------


class PriceCache(Protocol):
    """Where Tool/Detail's prices are kept between runs (the store implements it)."""

    async def all_pricing(self) -> dict[str, ModelPricing]: ...

    async def put_pricing(self, slug: str, pricing: ModelPricing) -> None: ...


class PastCosts(Protocol):
    async def median_cost(self, model: str, pixels: int) -> Decimal | None: ...


class PriceBook:
    """Every model's price: Tool/Detail's answer, kept in the database, read again daily."""

    def __init__(
        self,
        catalog: Catalog,
        cache: PriceCache,
        source: ToolDetailSource | None,
        *,
        past: PastCosts | None = None,
        durations: Callable[[str], float | None] | None = None,
        max_age: float = DAY,
    ) -> None:
        self.catalog = catalog
        self._cache = cache
        self._source = source
        self._past = past
        self._durations = durations
        self.max_age = max_age
        self._known: dict[str, ModelPricing] = {}
        self._loop: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """What the database has kept (before Wiro is asked anything)."""
        self._known = {slug.lower(): p for slug, p in (await self._cache.all_pricing()).items()}

    def pricing(self, slug: str) -> ModelPricing | None:
        return self._known.get(slug.lower())

    def stale(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [
            m.slug
            for m in self.catalog.all()
            if (known := self.pricing(m.slug)) is None or now - known.fetched_at >= self.max_age
        ]

    async def refresh(self, slugs: Iterable[str] | None = None) -> list[str]:
        """Ask Wiro again for these models' prices (default: those a day old or never read).
        Returns the problems, in words; a model Wiro did not answer for keeps its kept price."""
        if self._source is None:
            return []
        problems: list[str] = []
        for slug in list(slugs) if slugs is not None else self.stale():
            try:
                detail = await self._source.tool_detail(slug)
            except WiroError as exc:
                log.warning("price of %s not read from Wiro (the kept one serves): %s", slug, exc)
                problems.append(f"{slug}: {exc}")
                continue
            pricing = ModelPricing(
                tuple(detail.dynamicprice), detail.approximatelycost, time.time()
            )
            self._known[slug.lower()] = pricing
            await self._cache.put_pricing(slug, pricing)
        return problems

    def start(self, every: float = 3600.0) -> None:
        """Look once an hour for prices a day old, in the background."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.refresh()
                except Exception:  # the loop must outlive one bad answer
                    log.exception("price refresh failed")

        self._loop = asyncio.create_task(loop(), name="wirobot-prices")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop

    async def estimate(self, model: ModelSpec, inputs: Mapping[str, object]) -> Price:
        """The price of a run of `model` with resolved `inputs` (the bot's option names)."""
        wire = to_wire(model, inputs)
        seconds = self._durations(model.slug) if self._durations else None
        price = estimate(wire, self.pricing(model.slug), seconds=seconds)
        if price.amount is None and self._past is not None:
            history = await self._past.median_cost(model.slug, similar_pixels(wire))
            price = estimate(wire, None, history=history)
        return price

    def list_price(self, model: ModelSpec) -> Price:
        """The price of a run with the model's defaults, for /models (no history lookup)."""
        defaults = {s.name: s.default for s in model.inputs if s.default is not None and s.name}
        seconds = self._durations(model.slug) if self._durations else None
        return estimate(defaults, self.pricing(model.slug), seconds=seconds)
