"""Looking models up, autocomplete, and models added in config by slug."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from bot.catalog import Catalog, InvalidInput
from bot.wiro.exceptions import WiroError
from bot.wiro.types import ToolDetail
from tests.catalog.test_tool_detail import WATERCOLOR


class MemoryCache:
    """The catalog cache as the SQLite store keeps it, in a dict."""

    def __init__(self, stored: dict[str, dict[str, Any]] | None = None) -> None:
        self.stored: dict[str, dict[str, Any]] = dict(stored or {})

    async def get_tool_detail(self, slug: str) -> dict[str, Any] | None:
        return self.stored.get(slug)

    async def put_tool_detail(self, slug: str, detail: dict[str, Any]) -> None:
        self.stored[slug] = detail


class BrokenCache(MemoryCache):
    async def put_tool_detail(self, slug: str, detail: dict[str, Any]) -> None:
        raise OSError("disk full")


class FakeWiro:
    """Answers Tool/Detail from a dict; a slug it does not know fails like Wiro's 'not found'."""

    def __init__(self, details: dict[str, dict[str, Any]]) -> None:
        self.details = details
        self.asked: list[str] = []

    async def tool_detail(self, slug: str) -> ToolDetail:
        self.asked.append(slug)
        if slug not in self.details:
            raise WiroError(f"Tool/Detail found no model {slug}")
        return ToolDetail.model_validate(self.details[slug])


WATERCOLOR_SLUG = WATERCOLOR["slug"]


def other_model(slug: str, name: str) -> dict[str, Any]:
    payload = copy.deepcopy(WATERCOLOR)
    payload.update(slug=slug, name=name)
    payload["inputs"] = [i for i in payload["inputs"] if i["type"] not in ("fileinput", "checkbox")]
    return payload


# -- lookups -----------------------------------------------------------------------------------


def test_get_finds_a_model_by_slug_in_any_case() -> None:
    catalog = Catalog.from_seeds()
    model = catalog.get("WAVYMULDER/PortraitPlus")
    assert model is not None and model.slug == "wavymulder/portraitplus"
    assert catalog.get("portraitplus") is None
    assert "hevok/studio-trigger" in catalog
    assert len(catalog) == 5


def test_require_names_the_unknown_model_and_lists_the_available_ones() -> None:
    catalog = Catalog.from_seeds()
    with pytest.raises(InvalidInput) as caught:
        catalog.require("someone/nothing")
    assert caught.value.option == "model"
    assert caught.value.message == (
        "Unknown model 'someone/nothing'. Available: geelong_hillbilly/Facechain, "
        "wavymulder/portraitplus, Adel_AI/Comics-Factory-v1, ArsMachina/Ars-Niji-Style-v1, "
        "Hevok/Studio-Trigger."
    )
    assert catalog.require("adel_ai/comics-factory-v1").display_name == "Comics Factory v1"


def slugs(models: list[Any]) -> list[str]:
    return [model.slug for model in models]


def test_search_matches_slug_or_display_name_prefix_matches_first() -> None:
    catalog = Catalog.from_seeds()
    assert slugs(catalog.search("portrait")) == ["wavymulder/portraitplus"]
    assert slugs(catalog.search("NIJI")) == ["ArsMachina/Ars-Niji-Style-v1"]
    assert slugs(catalog.search("hevok")) == ["Hevok/Studio-Trigger"]
    # "Studio Trigger" starts with "s"; the others only contain it.
    found = slugs(catalog.search("s"))
    assert found[0] == "Hevok/Studio-Trigger"
    assert set(found) == {
        "Hevok/Studio-Trigger",
        "wavymulder/portraitplus",
        "Adel_AI/Comics-Factory-v1",
        "ArsMachina/Ars-Niji-Style-v1",
    }
    assert catalog.search("no such model") == []


def test_empty_search_lists_every_allowed_model_in_catalog_order() -> None:
    catalog = Catalog.from_seeds()
    assert slugs(catalog.search("")) == slugs(catalog.all())
    allowed = ["hevok/studio-trigger", "geelong_hillbilly/Facechain"]
    assert slugs(catalog.search("  ", allowed=allowed)) == [
        "geelong_hillbilly/Facechain",
        "Hevok/Studio-Trigger",
    ]
    assert slugs(catalog.search("studio", allowed=["geelong_hillbilly/Facechain"])) == []
    assert len(catalog.search("", limit=2)) == 2


def test_add_replaces_a_model_with_the_same_slug() -> None:
    catalog = Catalog.from_seeds()
    facechain = catalog.require("geelong_hillbilly/Facechain")
    catalog.add(facechain)
    assert len(catalog) == 5


# -- extra models by slug ----------------------------------------------------------------------


async def test_extra_model_is_fetched_cached_and_then_searchable() -> None:
    catalog = Catalog.from_seeds()
    wiro = FakeWiro({WATERCOLOR_SLUG: WATERCOLOR})
    cache = MemoryCache()

    problems = await catalog.load_extra([WATERCOLOR_SLUG], wiro, cache)

    assert wiro.asked == [WATERCOLOR_SLUG]
    stored = cache.stored[WATERCOLOR_SLUG]
    assert stored == ToolDetail.model_validate(WATERCOLOR).model_dump(mode="json")
    model = catalog.require(WATERCOLOR_SLUG)
    assert model.source == "wiro"
    assert slugs(catalog.search("water")) == [WATERCOLOR_SLUG]
    assert problems == [
        f"{WATERCOLOR_SLUG}: input 'inputImage' (fileinput) is left out: "
        "the bot cannot provide it.",
        f"{WATERCOLOR_SLUG}: input 'safetyChecker' (checkbox) is left out: "
        "the bot cannot provide it.",
    ]


async def test_cached_tool_detail_is_used_without_asking_wiro() -> None:
    cache = MemoryCache()
    await Catalog.from_seeds().load_extra(
        [WATERCOLOR_SLUG], FakeWiro({WATERCOLOR_SLUG: WATERCOLOR}), cache
    )

    catalog = Catalog.from_seeds()
    offline = FakeWiro({})
    await catalog.load_extra([WATERCOLOR_SLUG], offline, cache)

    assert offline.asked == []
    assert catalog.require(WATERCOLOR_SLUG).display_name == "Watercolor Flux"


async def test_refresh_fetches_again_and_updates_the_cache() -> None:
    cache = MemoryCache({WATERCOLOR_SLUG: {"slug": WATERCOLOR_SLUG, "name": "Old name"}})
    wiro = FakeWiro({WATERCOLOR_SLUG: WATERCOLOR})
    catalog = Catalog.from_seeds()
    await catalog.load_extra([WATERCOLOR_SLUG], wiro, cache, refresh=True)
    assert wiro.asked == [WATERCOLOR_SLUG]
    assert cache.stored[WATERCOLOR_SLUG]["name"] == "Watercolor Flux"


async def test_unreadable_cache_entry_is_fetched_again() -> None:
    cache = MemoryCache({WATERCOLOR_SLUG: {"name": "no slug, no use"}})
    wiro = FakeWiro({WATERCOLOR_SLUG: WATERCOLOR})
    catalog = Catalog.from_seeds()
    await catalog.load_extra([WATERCOLOR_SLUG], wiro, cache)
    assert wiro.asked == [WATERCOLOR_SLUG]
    assert WATERCOLOR_SLUG in catalog


async def test_a_slug_that_fails_is_logged_and_skipped_while_others_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = other_model("inkhouse/Ink-Wash", "Ink Wash")
    wiro = FakeWiro({"inkhouse/Ink-Wash": good})
    catalog = Catalog.from_seeds()

    with caplog.at_level(logging.WARNING, logger="bot.catalog.catalog"):
        problems = await catalog.load_extra(
            ["gone/Missing-Model", "inkhouse/Ink-Wash", "not a slug"], wiro, MemoryCache()
        )

    assert problems == [
        "gone/Missing-Model: could not be loaded: Tool/Detail found no model gone/Missing-Model",
        "not a slug: could not be loaded: 'not a slug' is not an owner/project slug.",
    ]
    assert "gone/Missing-Model" in caplog.text
    assert "gone/Missing-Model" not in catalog
    assert catalog.require("inkhouse/ink-wash").display_name == "Ink Wash"
    assert len(catalog) == 6


async def test_a_model_requiring_an_upload_is_reported_not_added() -> None:
    payload = copy.deepcopy(WATERCOLOR)
    payload["inputs"][1]["required"] = True
    catalog = Catalog.from_seeds()
    problems = await catalog.load_extra(
        [WATERCOLOR_SLUG], FakeWiro({WATERCOLOR_SLUG: payload}), MemoryCache()
    )
    assert WATERCOLOR_SLUG not in catalog
    assert problems == [
        f"{WATERCOLOR_SLUG}: could not be loaded: {WATERCOLOR_SLUG} requires 'inputImage' "
        "(fileinput), which the bot cannot provide."
    ]


async def test_seed_models_named_in_config_are_not_fetched_again() -> None:
    wiro = FakeWiro({})
    catalog = Catalog.from_seeds()
    problems = await catalog.load_extra(["wavymulder/portraitplus", " "], wiro, MemoryCache())
    assert problems == []
    assert wiro.asked == []
    assert catalog.require("wavymulder/portraitplus").source == "seed"


async def test_a_cache_that_cannot_store_still_leaves_the_model_usable() -> None:
    good = other_model("inkhouse/Ink-Wash", "Ink Wash")
    catalog = Catalog.from_seeds()
    problems = await catalog.load_extra(
        ["inkhouse/Ink-Wash"], FakeWiro({"inkhouse/Ink-Wash": good}), BrokenCache()
    )
    assert "inkhouse/Ink-Wash" in catalog
    assert problems == ["inkhouse/Ink-Wash: its Tool/Detail could not be cached: disk full"]


async def test_a_detail_without_owner_in_its_slug_takes_the_configured_slug() -> None:
    payload = other_model("Ink-Wash", "Ink Wash")
    catalog = Catalog.from_seeds()
    await catalog.load_extra(
        ["inkhouse/Ink-Wash"], FakeWiro({"inkhouse/Ink-Wash": payload}), MemoryCache()
    )
    assert catalog.require("inkhouse/Ink-Wash").slug == "inkhouse/Ink-Wash"
