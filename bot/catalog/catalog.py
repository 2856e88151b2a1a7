"""The models this bot can run: the five seed models plus any added in config by slug."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any, Protocol

from pydantic import ValidationError

from bot.catalog.loader import UnsupportedModel, convert_tool_detail, is_slug, load_seed_models
from bot.catalog.spec import ModelSpec
from bot.catalog.validation import InvalidInput
from bot.wiro.types import ToolDetail

log = logging.getLogger(__name__)


class CatalogCache(Protocol):
    """Where Tool/Detail answers are kept between runs (the SQLite store implements it)."""

    async def get_tool_detail(self, slug: str) -> dict[str, Any] | None: ...

    async def put_tool_detail(self, slug: str, detail: dict[str, Any]) -> None: ...


class ToolDetailSource(Protocol):
    """Something that reads Tool/Detail from Wiro (the WiroClient)."""

    async def tool_detail(self, slug: str) -> ToolDetail: ...


class Catalog:
    """Model specs by slug. Slugs match case-insensitively; order is the order of adding."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models: dict[str, ModelSpec] = {}
        for model in models:
            self.add(model)

    @classmethod
    def from_seeds(cls) -> Catalog:
        return cls(load_seed_models())

    def get(self, slug: str) -> ModelSpec | None:
        return self._models.get(_key(slug))

    def require(self, slug: str) -> ModelSpec:
        model = self.get(slug)
        if model is None:
            available = ", ".join(m.slug for m in self._models.values())
            shown = slug.strip() if len(slug.strip()) <= 100 else slug.strip()[:99] + "…"
            raise InvalidInput(
                "model", f"Unknown model '{shown}'. Available: {available}.", available
            )
        return model

    def all(self) -> list[ModelSpec]:
        return list(self._models.values())

    def search(
        self, query: str, *, allowed: Collection[str] | None = None, limit: int = 25
    ) -> list[ModelSpec]:
        """Models whose slug or display name contains `query` (any case), prefix matches first.

        `allowed` limits the answer to those slugs (a server's model list); an empty query
        gives every allowed model. At most `limit` results (Discord shows 25).
        """
        wanted = None if allowed is None else {_key(slug) for slug in allowed}
        needle = query.strip().casefold()
        first: list[ModelSpec] = []
        then: list[ModelSpec] = []
        for key, model in self._models.items():
            if wanted is not None and key not in wanted:
                continue
            names = (key, key.rsplit("/", 1)[-1], model.display_name.casefold())
            if any(name.startswith(needle) for name in names):
                first.append(model)
            elif any(needle in name for name in names):
                then.append(model)
        return (first + then)[: max(limit, 0)]

    def add(self, model: ModelSpec) -> None:
        """Add `model`, replacing any model with the same slug."""
        self._models[_key(model.slug)] = model

    def __contains__(self, slug: object) -> bool:
        return isinstance(slug, str) and _key(slug) in self._models

    def __len__(self) -> int:
        return len(self._models)

    async def load_extra(
        self,
        slugs: Iterable[str],
        source: ToolDetailSource,
        cache: CatalogCache,
        *,
        refresh: bool = False,
    ) -> list[str]:
        """Add models named in config by slug, read through Tool/Detail.

        A cached Tool/Detail is used when present (unless `refresh`); otherwise it is fetched
        and cached. A slug that is already in the catalog is left as it is. A slug that fails
        is logged and skipped. Returns the problems, one sentence each, for the admin: slugs
        that failed, and inputs the bot cannot provide and so leaves out.
        """
        problems: list[str] = []
        for raw in slugs:
            slug = raw.strip()
            if not slug or slug in self:
                continue
            try:
                if not is_slug(slug):
                    raise UnsupportedModel(f"'{slug}' is not an owner/project slug.")
                detail = await self._tool_detail(slug, source, cache, refresh, problems)
                if "/" not in detail.slug:
                    detail = detail.model_copy(update={"slug": slug})
                converted = convert_tool_detail(detail)
            except Exception as exc:  # one bad slug must not stop the others loading
                message = f"{slug}: could not be loaded: {_reason(exc)}"
                log.warning("Extra model %s", message)
                problems.append(message)
                continue
            self.add(converted.spec)
            for note in converted.skipped:
                log.info("Extra model %s: %s", slug, note)
                problems.append(f"{slug}: {note}")
        return problems

    @staticmethod
    async def _tool_detail(
        slug: str,
        source: ToolDetailSource,
        cache: CatalogCache,
        refresh: bool,
        problems: list[str],
    ) -> ToolDetail:
        if not refresh:
            cached = await cache.get_tool_detail(slug)
            if cached is not None:
                try:
                    return ToolDetail.model_validate(cached)
                except ValidationError as exc:
                    log.warning("Cached Tool/Detail for %s is unreadable, fetching: %s", slug, exc)
        detail = await source.tool_detail(slug)
        try:
            await cache.put_tool_detail(slug, detail.model_dump(mode="json"))
        except Exception as exc:  # the model still works, only the next start fetches again
            message = f"{slug}: its Tool/Detail could not be cached: {_reason(exc)}"
            log.warning("Extra model %s", message)
            problems.append(message)
        return detail


def _key(slug: str) -> str:
    return slug.strip().casefold()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__
