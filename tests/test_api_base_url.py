"""discord.api_base_url: where the bot's REST calls go (Discord, or a REST proxy in front)."""

from __future__ import annotations

import pytest

from bot.settings import ConfigError, load_settings


def test_the_rest_api_is_discords_unless_a_proxy_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WIROBOT_DISCORD__API_BASE_URL", raising=False)
    assert load_settings().discord.api_base_url == "https://discord.com/api/v10"
    monkeypatch.setenv("WIROBOT_DISCORD__API_BASE_URL", "http://nirn:8080/api/v10/")
    assert load_settings().discord.api_base_url == "http://nirn:8080/api/v10"


def test_an_address_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIROBOT_DISCORD__API_BASE_URL", "discord.com/api")
    with pytest.raises(ConfigError, match="api_base_url"):
        load_settings()
