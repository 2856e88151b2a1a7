"""Settings as the operator writes them: a TOML file, environment variables over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WIROBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray ./config.toml


def test_no_file_and_no_environment_gives_the_documented_defaults() -> None:
    settings = load_settings()
    assert settings.wiro.base_url == "https://api.wiro.ai/v1"
    assert settings.database.path == Path("data/wirobot.db")
    assert settings.wiro.api_key is None and settings.discord.token is None
    assert settings.jobs.deadline_seconds == 600


def test_the_fixed_environment_names_set_the_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIROBOT_DISCORD__TOKEN", "discord-token")
    monkeypatch.setenv("WIROBOT_WIRO__API_KEY", "the-key")
    monkeypatch.setenv("WIROBOT_WIRO__API_SECRET", "the-secret")
    monkeypatch.setenv("WIROBOT_WIRO__BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("WIROBOT_DATABASE__PATH", "/tmp/x/wirobot.db")
    settings = load_settings()
    assert settings.require_discord_token().get_secret_value() == "discord-token"
    assert settings.require_wiro_key().get_secret_value() == "the-key"
    assert settings.wiro.api_secret is not None
    assert settings.wiro.base_url == "http://127.0.0.1:9/v1"
    assert settings.database.path == Path("/tmp/x/wirobot.db")
    shown = repr(settings) + str(settings)
    for secret in ("discord-token", "the-key", "the-secret"):
        assert secret not in shown


def test_an_empty_secret_means_key_only_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIROBOT_WIRO__API_KEY", "the-key")
    monkeypatch.setenv("WIROBOT_WIRO__API_SECRET", "")
    assert load_settings().wiro.api_secret is None


def test_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "wirobot.toml"
    config.write_text(
        "[jobs]\nmax_concurrent = 3\ndeadline_seconds = 60\n[discord]\nguild_ids = [1, 2]\n"
    )
    monkeypatch.setenv("WIROBOT_JOBS__MAX_CONCURRENT", "5")
    settings = load_settings(config)
    assert settings.jobs.max_concurrent == 5
    assert settings.jobs.deadline_seconds == 60
    assert settings.discord.guild_ids == [1, 2]


def test_the_file_is_found_through_wirobot_config_or_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.toml").write_text("[jobs]\nmax_concurrent = 4\n")
    assert load_settings().jobs.max_concurrent == 4
    other = tmp_path / "other.toml"
    other.write_text("[jobs]\nmax_concurrent = 6\n")
    monkeypatch.setenv("WIROBOT_CONFIG", str(other))
    assert load_settings().jobs.max_concurrent == 6


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[jobs]\nmax_concurrent = 0\n", "jobs.max_concurrent"),
        ("[wiro]\nbase_url = 'ftp://x'\n", "wiro.base_url"),
        ("[models]\nextra = ['no-slash']\n", "models.extra"),
        ("[wiro]\napi_kee = 'typo'\n", "wiro.api_kee"),
        ("[jobs\n", "wirobot.toml"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, toml: str, named: str) -> None:
    config = tmp_path / "wirobot.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert named in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_missing_credentials_name_their_variable() -> None:
    settings = load_settings()
    with pytest.raises(ConfigError, match="WIROBOT_WIRO__API_KEY"):
        settings.require_wiro_key()
    with pytest.raises(ConfigError, match="WIROBOT_DISCORD__TOKEN"):
        settings.require_discord_token()


def test_the_socket_is_on_by_default_and_an_empty_url_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(None).wiro.socket_url == "wss://socket.wiro.ai/v1"
    monkeypatch.setenv("WIROBOT_WIRO__SOCKET_URL", "")
    assert load_settings(None).wiro.socket_url == ""


def test_a_socket_url_that_is_not_a_websocket_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIROBOT_WIRO__SOCKET_URL", "https://socket.wiro.ai/v1")
    with pytest.raises(ConfigError, match=r"wiro\.socket_url \(WIROBOT_WIRO__SOCKET_URL\)"):
        load_settings(None)


def test_the_detail_rate_cap_defaults_to_ten_a_second() -> None:
    assert load_settings(None).jobs.detail_calls_per_second == 10
    assert load_settings(None).jobs.poll_min_interval >= 1.0
@pytest.mark.parametrize(
    ("name", "value", "example"),
    [
        ("WIROBOT_MODELS__EXTRA", "owner/project", '["owner/project"'),
        ("WIROBOT_DISCORD__GUILD_IDS", "[1,", "[123456789012345678"),
        ("WIROBOT_DISCORD__GUILD_IDS", "123", "[123456789012345678"),
    ],
)
def test_a_list_setting_that_is_not_json_names_the_variable_and_the_form(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, example: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert name in message and example in message
    assert "EnvSettingsSource" not in message and "None" not in message
    assert "\n" not in message


def test_a_bad_list_item_names_the_variable_people_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIROBOT_DISCORD__GUILD_IDS", '["general"]')
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value).startswith(
        "setting discord.guild_ids[0] (WIROBOT_DISCORD__GUILD_IDS): "
    )


def test_logging_format_is_text_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().logging.format == "text"
    monkeypatch.setenv("WIROBOT_LOGGING__FORMAT", "json")
    assert load_settings().logging.format == "json"
    monkeypatch.setenv("WIROBOT_LOGGING__FORMAT", "xml")
    with pytest.raises(ConfigError, match="WIROBOT_LOGGING__FORMAT"):
        load_settings()


def test_a_key_with_stray_bytes_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WIROBOT_WIRO__API_KEY", "abc\udcff\udcfedef")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "WIROBOT_WIRO__API_KEY" in str(caught.value) and "copy it again" in str(caught.value)
    assert "abc" not in str(caught.value)

    monkeypatch.setenv("WIROBOT_WIRO__API_KEY", "  the-key\n")
    assert load_settings().require_wiro_key().get_secret_value() == "the-key"
