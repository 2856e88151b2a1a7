"""The web server's life with the bot, its settings, and how images are served."""

from __future__ import annotations

import asyncio
import html
import os
import re
import signal
import socket
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

from bot.discord_bot import _run
from bot.settings import ConfigError, load_settings
from tests.discord.conftest import Harness
from tests.discord.test_shutdown import OfflineBot
from tests.web.conftest import Site, make_image_job
from tests.wiro_standin import WiroStandIn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_bot_serves_on_its_port_until_it_stops(wiro: WiroStandIn, tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(
        None,
        discord={"token": "not-used"},
        wiro={"api_key": wiro.api_key, "api_secret": wiro.api_secret, "base_url": wiro.base_url},
        database={"path": tmp_path / "wirobot.db"},
        web={"port": port},
    )
    OfflineBot.started.clear()
    OfflineBot.ready = asyncio.Event()
    running = asyncio.create_task(_run(settings, "not-used", OfflineBot))
    url = f"http://127.0.0.1:{port}/healthz"
    async with asyncio.timeout(10), aiohttp.ClientSession() as session:
        await OfflineBot.ready.wait()
        async with session.get(url) as resp:
            # Up, but the gateway never answers: not healthy, and it says why.
            assert resp.status == 503
            assert (await resp.json())["failing"] == ["discord"]
        os.kill(os.getpid(), signal.SIGTERM)
        assert await running == 0
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(url):
                pass


async def test_gallery_says_so_when_the_web_server_is_off(harness: Harness) -> None:
    h = harness
    assert h.settings.web.port == 0 and h.bot.web is None
    result = await h.alice.slash(h.channel, "gallery")
    assert result.ephemeral
    assert h.message(result).content == (
        "The gallery is not running on this bot (its web server is off)."
    )


async def test_the_link_uses_the_public_address(site: Site) -> None:
    h = site.harness
    h.bot.settings.web.public_url = "https://art.example.org"
    link = await site.link(h.alice)
    assert link.startswith("https://art.example.org/g/")


def test_web_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIROBOT_WEB__PORT", "0")
    monkeypatch.setenv("WIROBOT_WEB__PUBLIC_URL", "https://art.example.org/")
    settings = load_settings(None)
    assert settings.web.port == 0
    assert settings.web.host == "127.0.0.1"
    assert settings.web.public_url == "https://art.example.org"
    monkeypatch.setenv("WIROBOT_WEB__PUBLIC_URL", "art.example.org")
    with pytest.raises(ConfigError, match=r"web.public_url \(WIROBOT_WEB__PUBLIC_URL\)"):
        load_settings(None)
    monkeypatch.setenv("WIROBOT_WEB__PUBLIC_URL", "")
    monkeypatch.setenv("WIROBOT_WEB__PORT", "70000")
    with pytest.raises(ConfigError, match=r"web.port \(WIROBOT_WEB__PORT\)"):
        load_settings(None)


async def test_thumbnails_are_made_once_and_images_cached(site: Site) -> None:
    h = site.harness
    job = await make_image_job(h, h.alice, "a red fox")
    link = await site.link(h.alice)

    original = await site.get(f"{link}img/{job.id}/0")
    assert original.status == 200
    assert original.headers["Content-Type"] == "image/png"
    assert original.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert job.outputs[0].path is not None
    with open(job.outputs[0].path, "rb") as f:  # noqa: ASYNC230 (a test reading a small file)
        assert original.body == f.read()

    first = await site.get(f"{link}thumb/{job.id}/0")
    assert first.status == 200 and first.headers["Content-Type"] == "image/webp"
    thumbs = list((h.settings.database.outputs_path / "thumbs").iterdir())
    assert [t.suffix for t in thumbs] == [".webp"]
    made = thumbs[0].stat().st_mtime_ns
    with Image.open(thumbs[0]) as image:
        assert image.format == "WEBP"

    again = await site.get(f"{link}thumb/{job.id}/0")
    assert again.body == first.body
    assert thumbs[0].stat().st_mtime_ns == made  # kept, not made again

    async with site.session.get(
        f"{link}thumb/{job.id}/0", headers={"If-None-Match": first.headers["ETag"]}
    ) as resp:
        assert resp.status == 304


async def test_a_page_that_does_not_exist_is_a_plain_404(site: Site) -> None:
    page = await site.get("/nothing/here")
    assert page.status == 404
    assert "There is nothing here." in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


async def test_pages_follow_each_other_without_gaps_or_repeats(site: Site) -> None:
    h = site.harness
    made = [
        await make_image_job(h, h.alice, f"cat {n}", created_at=1000.0 + n // 10) for n in range(30)
    ]
    link = await site.link(h.alice)
    seen: list[int] = []
    url = link
    while url:
        page = await site.get(url)
        seen += [int(n) for n in re.findall(r'data-job="(\d+)"', page.text)]
        more = re.search(r'data-next="([^"]+)"', page.text)
        url = html.unescape(more.group(1)) if more else ""
    expected = sorted(made, key=lambda j: (j.created_at, j.id), reverse=True)
    assert seen == [j.id for j in expected]
