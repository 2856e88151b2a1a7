"""Shared fixtures. The Wiro stand-in is a real local server: see tests/wiro_standin.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.wiro import Credentials, RetryPolicy, WiroClient
from tests.wiro_standin import WiroStandIn


@pytest.fixture
async def wiro() -> AsyncIterator[WiroStandIn]:
    """A started WiroStandIn (signature mode, tasks take 0.05 s)."""
    async with WiroStandIn() as server:
        yield server


@pytest.fixture
async def wiro_client(wiro: WiroStandIn) -> AsyncIterator[WiroClient]:
    """A WiroClient talking to `wiro`, retrying without waiting."""
    async with aiohttp.ClientSession() as session:
        yield WiroClient(
            session,
            Credentials(wiro.api_key, wiro.api_secret),
            base_url=wiro.base_url,
            retry=RetryPolicy(base_delay=0),
        )
