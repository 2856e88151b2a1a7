"""From settings to a running engine: the database, the catalog with extra models."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.runtime import open_runtime
from bot.settings import ConfigError, Settings, load_settings
from tests.wiro_standin import WiroStandIn, default_tool_items

EXTRA = "someone/Watercolour-XL"


def settings_for(wiro: WiroStandIn, tmp_path: Path, **models: object) -> Settings:
    return load_settings(
        None,
        wiro={
            "api_key": wiro.api_key,
            "api_secret": wiro.api_secret,
            "base_url": wiro.base_url,
            "socket_url": wiro.socket_url,
        },
        database={"path": tmp_path / "db" / "wirobot.db"},
        models=models,
    )


async def test_an_extra_model_is_read_through_tool_detail_once_and_cached(
    wiro: WiroStandIn, tmp_path: Path
) -> None:
    wiro.add_tool(EXTRA, default_tool_items(), title="Watercolour XL")
    settings = settings_for(wiro, tmp_path, extra=[EXTRA])
    async with open_runtime(settings) as runtime:
        model = runtime.catalog.require(EXTRA)
        assert model.source == "wiro"
        assert model.input("prompt") is not None
        assert await runtime.store.tools.get_tool_detail(EXTRA) is not None
    # Once for the model's inputs, then once per model (the five seeds and it) for prices.
    assert wiro.calls["tool_detail"] == 1 + 6
    assert (tmp_path / "db").is_dir()

    async with open_runtime(settings) as runtime:
        assert runtime.catalog.get(EXTRA) is not None
    assert wiro.calls["tool_detail"] == 1 + 6  # from the database the second time


async def test_an_extra_model_wiro_does_not_know_is_skipped_not_fatal(
    wiro: WiroStandIn, tmp_path: Path
) -> None:
    wiro.models = set()  # Wiro knows no such model
    settings = settings_for(wiro, tmp_path, extra=["nobody/nothing"])
    async with open_runtime(settings) as runtime:
        assert runtime.catalog.get("nobody/nothing") is None
        assert len(runtime.catalog.all()) == 5


async def test_an_unknown_default_model_is_a_configuration_error(
    wiro: WiroStandIn, tmp_path: Path
) -> None:
    settings = settings_for(wiro, tmp_path, default="nobody/nothing")
    with pytest.raises(ConfigError, match=r"models\.default"):
        async with open_runtime(settings):
            pass
