"""The web server of a running bot (see tests/discord/conftest.py), on a free loopback port.

`site.link(member, channel)` asks for /gallery in Discord as that member and returns the link
the bot answered with; `site.get(path_or_url)` fetches a page; `make_image_job` stores a
finished job with real image files, as the engine leaves one.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from multidict import CIMultiDict
from PIL import Image
from pydantic import SecretStr
from simcord.actors import MemberActor
from simcord.builders import ChannelHandle
from yarl import URL

from bot.jobs.job import Job, JobState, Output, Requester
from bot.settings import Settings
from bot.store import NewJob
from tests.discord.conftest import (  # the Discord harness's fixtures, used here too
    Harness,
    _harness,  # noqa: F401
    extensions,  # noqa: F401
    harness,  # noqa: F401
)
from tests.discord.conftest import discord_settings as sqlite_settings  # noqa: F401

PORTRAIT = "wavymulder/portraitplus"
_LINK = re.compile(r"https?://\S+/g/[A-Za-z0-9_.-]+/")


@dataclass
class Site:
    harness: Harness
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        web = self.harness.bot.web
        assert web is not None
        return web.url

    async def link(self, member: MemberActor, channel: ChannelHandle | None = None) -> str:
        h = self.harness
        result = await member.slash(channel or h.channel, "gallery")
        assert result.ephemeral
        found = _LINK.search(h.message(result).content)
        assert found, h.message(result).content
        return found.group(0)

    async def get(self, url: str, *, raw: bool = False) -> Page:
        """GET a page (`raw`: send the path exactly as written, dots and all)."""
        target = url if url.startswith("http") else self.url + url
        async with self.session.get(URL(target, encoded=raw), allow_redirects=False) as resp:
            body = await resp.read()
            return Page(resp.status, body, resp.headers.copy())


@dataclass(frozen=True)
class Page:
    status: int
    body: bytes
    headers: CIMultiDict[str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@pytest.fixture(params=["sqlite", "postgresql"])
def web_database(request: pytest.FixtureRequest) -> str:
    """The gallery's pages run on both backends: "sqlite", or a fresh PostgreSQL database's
    URL (a test module may override this fixture to keep to one)."""
    if request.param == "sqlite":
        return "sqlite"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def discord_settings(sqlite_settings: Settings, web_database: str) -> Settings:  # noqa: F811
    """The Discord harness's settings, on `web_database`."""
    settings = sqlite_settings
    if web_database == "sqlite":
        return settings
    database = settings.database.model_copy(update={"url": SecretStr(web_database)})
    return settings.model_copy(update={"database": database})


@pytest.fixture
async def site(harness: Harness) -> AsyncIterator[Site]:  # noqa: F811
    await harness.bot.start_web(0)
    try:
        async with aiohttp.ClientSession() as session:
            yield Site(harness, session)
    finally:
        # simcord detaches the bot without calling its close(): stop the server here.
        assert harness.bot.web is not None
        await harness.bot.web.stop()


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


async def make_image_job(
    h: Harness,
    who: MemberActor,
    prompt: str,
    *,
    channel: ChannelHandle | None = None,
    model: str = PORTRAIT,
    images: int = 1,
    cost: float | None = 0.0042,
    guild_id: int | None = None,
    created_at: float | None = None,
) -> Job:
    """A succeeded job with `images` PNG files in the outputs folder."""
    store = h.runtime.store
    now = time.time() if created_at is None else created_at
    job = await store.jobs.create(
        NewJob(
            model=model,
            prompt=prompt,
            inputs={"prompt": prompt, "negative_prompt": "blurry", "steps": 30, "seed": 7},
            seed=7,
            requester=Requester(
                user_id=who.id,
                guild_id=h.guild.id if guild_id is None else guild_id,
                channel_id=(channel or h.channel).id,
            ),
            created_at=now,
        )
    )
    outputs = _write_pngs(h.settings.database.outputs_path, job.id, images)
    await store.jobs.finish(
        job.id,
        outputs,
        status=JobState.SUCCEEDED,
        cost=cost,
        submitted_at=now,
        finished_at=now + 6.5,
        elapsed_seconds=6.5,
    )
    stored = await store.jobs.get(job.id)
    assert stored is not None
    return stored


def _write_pngs(folder: Path, job_id: int, images: int) -> list[Output]:
    folder.mkdir(parents=True, exist_ok=True)
    outputs = []
    for position in range(images):
        path = folder / f"job{job_id}-{position:02d}-image.png"
        path.write_bytes(png(((job_id * 40) % 256, (position * 90) % 256, 160)))
        size = path.stat().st_size
        outputs.append(
            Output(position, path.name, "image/png", size, "https://cdn/x.png", str(path), 64, 64)
        )
    return outputs
