"""A run's price before it runs: dynamicprice by method, then approximatelycost, then the
history of similar jobs, else unknown; prices kept in the database and read again daily."""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.catalog.catalog import Catalog
from bot.catalog.pricing import ModelPricing, PriceBook, PriceSource, estimate
from bot.catalog.spec import ModelSpec
from bot.catalog.validation import resolve_inputs
from bot.jobs.job import JobState, Requester
from bot.store import NewJob, Store
from bot.wiro import WiroClient
from bot.wiro.types import PriceRule, price_rules
from tests.wiro_standin import WiroStandIn

COMICS = "Adel_AI/Comics-Factory-v1"


def rules(*entries: dict[str, Any]) -> ModelPricing:
    return ModelPricing(tuple(PriceRule.model_validate(e) for e in entries))


def run(**inputs: object) -> dict[str, object]:
    return {"prompt": "a cat", "samples": 1, "width": 1024, "height": 1024, **inputs}


def test_a_flat_per_request_price() -> None:
    price = estimate(run(samples=4), rules({"inputs": {}, "price": 0.02, "priceMethod": "cpr"}))
    assert (price.amount, price.source, price.method) == (
        Decimal("0.02"),
        PriceSource.RULE,
        "cpr",
    )
    assert price.words == "about $0.02"


def test_per_output_multiplies_by_the_images_asked_for() -> None:
    pricing = rules({"inputs": {}, "price": "0.003", "priceMethod": "cpo"})
    assert estimate(run(samples=4), pricing).amount == Decimal("0.012")
    assert estimate(run(samples="2"), pricing).amount == Decimal("0.006")


def test_per_pixel_tier_adds_price_extra_for_each_further_megapixel() -> None:
    pricing = rules(
        {"inputs": {}, "price": "0.01", "priceMethod": "cp-pixel", "priceExtra": "0.004"}
    )
    assert estimate(run(width=1024, height=1024), pricing).amount == Decimal("0.01")
    assert estimate(run(width=512, height=512), pricing).amount == Decimal("0.01")
    # 1536 x 1024 begins a second tier; 2048 x 2048 is four tiers.
    assert estimate(run(width=1536, height=1024), pricing).amount == Decimal("0.014")
    assert estimate(run(width=2048, height=2048, samples=2), pricing).amount == Decimal("0.044")


def test_per_second_uses_how_long_this_model_takes() -> None:
    pricing = ModelPricing(
        rules({"inputs": {}, "price": "0.000585", "priceMethod": "cps"}).rules,
        approximate=Decimal("0.005"),
    )
    assert estimate(run(), pricing, seconds=6.0).amount == Decimal("0.003510")
    # Not known yet how long it takes: Wiro's own approximatelycost answers.
    unknown_time = estimate(run(), pricing)
    assert (unknown_time.amount, unknown_time.source) == (
        Decimal("0.005"),
        PriceSource.APPROXIMATE,
    )


def test_the_entry_whose_inputs_match_wins_the_most_specific_first() -> None:
    pricing = rules(
        {"inputs": {}, "price": "0.01", "priceMethod": "cpr"},
        {"inputs": {"width": "2048"}, "price": "0.03", "priceMethod": "cpr"},
        {"inputs": {"width": 2048, "steps": "50"}, "price": "0.05", "priceMethod": "cpr"},
    )
    assert estimate(run(), pricing).amount == Decimal("0.01")
    assert estimate(run(width=2048), pricing).amount == Decimal("0.03")
    assert estimate(run(width=2048, steps=50), pricing).amount == Decimal("0.05")


def test_no_matching_entry_falls_back_to_approximatelycost_then_history_then_unknown() -> None:
    only_big = rules({"inputs": {"width": 2048}, "price": "0.03", "priceMethod": "cpr"})
    with_approx = ModelPricing(only_big.rules, approximate=Decimal("0.007"))
    assert estimate(run(), with_approx).source is PriceSource.APPROXIMATE
    history = estimate(run(), only_big, history=Decimal("0.0042"))
    assert (history.amount, history.source) == (Decimal("0.0042"), PriceSource.HISTORY)
    unknown = estimate(run(), None)
    assert unknown.amount is None and unknown.words == "unknown"


def test_per_token_and_unknown_methods_pass_to_the_next_source() -> None:
    pricing = ModelPricing(
        rules({"inputs": {}, "price": "0.00001", "priceMethod": "cpt"}).rules,
        approximate=Decimal("0.002"),
    )
    assert estimate(run(), pricing).source is PriceSource.APPROXIMATE


def test_dynamicprice_may_come_as_a_json_string_and_bad_entries_are_skipped() -> None:
    text = json.dumps(
        [
            {"inputs": {}, "price": "0.003", "priceMethod": "cpo"},
            {"inputs": {}, "price": "lots", "priceMethod": "cpr"},
            "nonsense",
        ]
    )
    parsed = price_rules(text)
    assert [(r.price, r.method) for r in parsed] == [(Decimal("0.003"), "cpo")]
    assert price_rules("not json") == []
    assert price_rules(None) == []


# -- the price book: Tool/Detail, kept in the database ------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "wirobot.db") as store:
        yield store


def book(store: Store, client: WiroClient | None) -> PriceBook:
    return PriceBook(Catalog.from_seeds(), store.spend, client, past=store.spend)


async def test_prices_are_read_for_every_seed_model_and_kept(
    wiro: WiroStandIn, wiro_client: WiroClient, store: Store
) -> None:
    wiro.set_pricing(
        COMICS,
        dynamicprice=json.dumps([{"inputs": {}, "price": "0.02", "priceMethod": "cpr"}]),
        approximatelycost="0.03",
    )
    prices = book(store, wiro_client)
    assert await prices.refresh() == []
    assert wiro.calls["tool_detail"] == 5
    comics = prices.catalog.require(COMICS)
    assert (await prices.estimate(comics, _defaults(comics))).amount == Decimal("0.02")

    # A new start reads the database, not Wiro, while the prices are under a day old.
    again = book(store, wiro_client)
    await again.load()
    assert again.stale() == []
    assert (await again.estimate(comics, _defaults(comics))).amount == Decimal("0.02")
    assert again.stale(now=time.time() + 86_400) != []


async def test_when_tool_detail_fails_the_kept_price_serves(
    wiro: WiroStandIn, wiro_client: WiroClient, store: Store
) -> None:
    prices = book(store, wiro_client)
    await prices.refresh()
    wiro.set_pricing(COMICS, dynamicprice=[{"inputs": {}, "price": "9", "priceMethod": "cpr"}])
    for _ in range(10):
        wiro.fail_next("tool_detail", "http500")

    problems = await prices.refresh([COMICS])

    assert problems and problems[0].startswith(COMICS)
    comics = prices.catalog.require(COMICS)
    price = await prices.estimate(comics, _defaults(comics))
    assert (price.amount, price.source) == (Decimal("0.003"), PriceSource.RULE)
    restarted = book(store, None)
    await restarted.load()
    assert (await restarted.estimate(comics, _defaults(comics))).amount == Decimal("0.003")


async def test_without_any_price_the_median_of_similar_past_jobs_answers(store: Store) -> None:
    prices = book(store, None)  # Wiro never answered: nothing kept
    comics = prices.catalog.require(COMICS)
    for cost, width in (("0.010", 1024), ("0.020", 1024), ("0.030", 1024), ("0.500", 2048)):
        job = await store.jobs.create(
            NewJob(
                model=COMICS,
                prompt="x",
                inputs={"prompt": "x", "seed": 1, "width": width, "height": width, "samples": 1},
                seed=1,
                requester=Requester(),
                created_at=time.time(),
            )
        )
        await store.jobs.update(job.id, status=JobState.SUCCEEDED, cost=Decimal(cost))

    price = await prices.estimate(comics, _defaults(comics))  # 1024 x 1024, one image

    assert (price.amount, price.source) == (Decimal("0.02"), PriceSource.HISTORY)
    studio = prices.catalog.require("Hevok/Studio-Trigger")
    assert (await prices.estimate(studio, _defaults(studio))).amount is None


def _defaults(model: ModelSpec) -> dict[str, object]:
    return resolve_inputs(model, {"prompt": "a cat"}, rng=random.Random(1))
