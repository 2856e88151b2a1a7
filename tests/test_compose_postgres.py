"""docker-compose.postgres.yml, as far as it can be tried without a Docker daemon: every
bot process on the one PostgreSQL, each with its own shards, and the settings it gives are
valid."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_bot_process_shares_the_database_and_runs_its_own_shards(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.postgres.yml").read_text())
    services = compose["services"]
    bots = {name: s for name, s in services.items() if name.startswith("wirobot")}
    assert len(bots) >= 2
    shards: list[int] = []
    monkeypatch.chdir(tmp_path)
    for service in bots.values():
        assert service["restart"] == "unless-stopped" and service["env_file"] == "wirobot.env"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        for name, value in service["environment"].items():
            monkeypatch.setenv(name, value)
        settings = load_settings()
        assert settings.database.shown_url == "postgresql://wirobot:***@postgres:5432/wirobot"
        assert settings.discord.shard_count == len(bots)
        shards += settings.discord.shard_ids
    assert sorted(shards) == list(range(len(bots)))  # every shard run once
    readme = (ROOT / "README.md").read_text()
    assert "docker compose -f docker-compose.postgres.yml up -d --build" in readme
    assert "wirobot migrate --from-sqlite" in readme
