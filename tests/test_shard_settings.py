"""discord.shard_count and discord.shard_ids: which shards this process runs."""

from __future__ import annotations

import pytest

from bot.discord_bot import WiroBot
from bot.settings import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.chdir(str(tmp_path))
    for name in ("WIROBOT_DISCORD__SHARD_COUNT", "WIROBOT_DISCORD__SHARD_IDS", "WIROBOT_CONFIG"):
        monkeypatch.delenv(name, raising=False)


async def test_with_neither_the_bot_runs_every_shard_discord_recommends() -> None:
    bot = WiroBot(load_settings())
    assert bot.shard_count is None and bot.shard_ids is None  # discord.py asks Discord


async def test_a_process_runs_the_shards_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIROBOT_DISCORD__SHARD_COUNT", "4")
    monkeypatch.setenv("WIROBOT_DISCORD__SHARD_IDS", "[3, 2]")
    bot = WiroBot(load_settings())
    assert bot.shard_count == 4 and bot.shard_ids == [2, 3]


@pytest.mark.parametrize(
    ("count", "ids", "says"),
    [
        (None, "[0]", "needs discord.shard_count"),
        ("2", "[2]", "shard 2 is not one of 0..1"),
        ("2", "[1, 1]", "names a shard twice"),
        ("2", "1", "like WIROBOT_DISCORD__SHARD_IDS='[0, 1]'"),
        ("0", "[]", "discord.shard_count"),
    ],
)
def test_wrong_shards_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, count: str | None, ids: str, says: str
) -> None:
    if count is not None:
        monkeypatch.setenv("WIROBOT_DISCORD__SHARD_COUNT", count)
    monkeypatch.setenv("WIROBOT_DISCORD__SHARD_IDS", ids)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert says in str(refused.value) and "\n" not in str(refused.value)
