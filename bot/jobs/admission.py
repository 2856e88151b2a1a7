"""Admission: check a request against its model, the server's settings and the daily limit.

Nothing is stored here; `JobEngine.submit` stores what `Admission.prepare` accepted.
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from typing import Any

from bot.catalog.catalog import Catalog
from bot.catalog.pricing import UNKNOWN, Price, PriceBook
from bot.catalog.validation import InputCaps, InvalidInput, resolve_inputs
from bot.jobs.budget import Budgets
from bot.jobs.job import Requester
from bot.settings import JobSettings
from bot.store import GuildSettings, Store

DAY = 86_400.0


class JobRefused(Exception):
    """The job was not accepted; `str()` is a sentence for the person who asked."""


class LimitReached(JobRefused):
    def __init__(self, message: str, *, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class BudgetExceeded(LimitReached):
    """The job's price would take its server or member past a budget; `retry_at` is when
    the budget renews."""


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What someone asked for. `options` are snake_case names; None values mean not given."""

    prompt: str
    requester: Requester
    model: str | None = None
    options: dict[str, object] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request checked against its model, the server's settings and limits."""

    request: JobRequest
    model: str  # the slug it runs with
    inputs: dict[str, Any]  # every input resolved, seed included
    guild: GuildSettings | None
    price: Price = UNKNOWN  # what it will cost, as far as is known
    budgeted: bool = False  # a budget holds: checked again, under a lock, when stored


class Admission:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        settings: JobSettings,
        default_model: str,
        rng: random.Random,
        prices: PriceBook,
        budgets: Budgets,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._settings = settings
        self._default_model = default_model
        self._rng = rng
        self._prices = prices
        self._budgets = budgets

    async def prepare(self, request: JobRequest) -> Prepared:
        """Check a request without storing anything. Raises InvalidInput or LimitReached
        with a message for the person."""
        guild_id = request.requester.guild_id
        guild = await self._store.guilds.recent(guild_id) if guild_id is not None else None
        slug = request.model or (guild.default_model if guild else None) or self._default_model
        model = self._catalog.require(slug)
        if guild is not None and not guild.allows(model.slug):
            allowed = [m.slug for m in self._catalog.all() if guild.allows(m.slug)]
            raise InvalidInput(
                "model",
                f"{model.slug} is turned off on this server. Allowed: {', '.join(allowed)}.",
                ", ".join(allowed),
            )
        defaults = (
            await self._store.guilds.recent_model_defaults(guild.guild_id, model.slug)
            if guild
            else {}
        )
        caps = InputCaps(guild.max_samples, guild.max_steps) if guild else None
        given = {"prompt": request.prompt, **request.options}
        inputs = resolve_inputs(model, given, defaults=defaults, caps=caps, rng=self._rng)
        await self._check_daily_limit(request.requester, guild)
        price = await self._prices.estimate(model, inputs)
        budgeted = await self._budgets.applies(request.requester)
        if budgeted:
            await self.check_budget(request.requester, price)
        return Prepared(request, model.slug, inputs, guild, price, budgeted)

    async def check_budget(self, requester: Requester, price: Price) -> None:
        refusal = await self._budgets.check(requester, price.amount, now=time.time())
        if refusal is not None:
            raise BudgetExceeded(refusal.message, retry_at=refusal.renews_at)

    async def _check_daily_limit(self, requester: Requester, guild: GuildSettings | None) -> None:
        limit = self._settings.max_jobs_per_user_per_day or None
        if guild is not None and guild.max_jobs_per_user_per_day is not None:
            limit = guild.max_jobs_per_user_per_day
        if not limit or requester.user_id is None:
            return
        since = time.time() - DAY
        used = await self._store.jobs.count_started_since(
            user_id=requester.user_id, guild_id=requester.guild_id, since=since
        )
        if used >= limit:
            oldest = await self._store.jobs.oldest_started_since(
                user_id=requester.user_id, guild_id=requester.guild_id, since=since
            )
            retry_at = (oldest or time.time()) + DAY
            raise LimitReached(
                f"You have used your {limit} images per day on this server.",
                retry_at=retry_at,
            )
