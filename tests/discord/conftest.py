"""The Discord harness: the real WiroBot under simcord, the Wiro stand-in behind it.

How to use it
-------------
Ask for the `harness` fixture (type `Harness`). It gives you, already running:

- `h.wiro`: the WiroStandIn on 127.0.0.1, holding every new task in task_queue (`hold()`), so a
  job stays queued until the test moves it: `await h.finish(job)` (or `h.wiro.advance(...)`).
- `h.settings`: Settings pointing at the stand-in, with a temporary SQLite database.
- `h.runtime`: the open Runtime (engine, store, catalog), shared with the bot.
- `h.bot`: the real WiroBot; `h.env`: the simcord Env.
- a guild with `h.channel` (#art), `h.nsfw_channel` (#after-dark, age-restricted), members
  `h.alice` and `h.bob` (plain members) and `h.mod` (Manage Messages), all MemberActors.

Drive it like a user, then assert what people see or what was stored:

    async def test_something(harness: Harness) -> None:
        h = harness
        result = await h.alice.slash(h.channel, "imagine", prompt="a lighthouse")
        job = await h.last_job()
        await h.until(job.id, lambda j: j.task_id is not None)   # Wiro has the task
        await h.tick()                                            # the status message catches up
        job = await h.finish(job)                                 # Wiro finishes; result posted
        message = h.message(result)                               # the job's message, as it is now

Time: the engine and the stand-in run on real time; the bot's status ticker runs on simcord's
virtual clock, so status messages change only when the test calls `h.tick()` (which advances
virtual time by one `status_edit_interval`). `h.until(...)` waits (real time, bounded) for the
engine. `h.restart()` stops the bot and its engine and starts new ones on the same database.

Other cogs: `Harness` loads every extension in `bot.discord_bot.EXTENSIONS`; to load more (or
fewer) in your tests, override the `extensions` fixture in your test module or conftest.

Protocol-level fakes simcord lacks, all set up per test and undone after it:
- `h.age_restricted` names the channels Discord reports as age-restricted (NSFW);
- `h.set_upload_limit(n, advertise=True)` makes Discord reject uploads over n bytes
  (HTTP 413, code 40005) and, with `advertise`, report n as the interaction's upload limit.
- Missing permissions: create a channel with overwrites denying the bot (see the tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import discord
import pytest
import simcord
import simcord.backend.serializers
import simcord.http.router
import simcord.interactions
from simcord.actors import MemberActor
from simcord.backend.errors import BackendError
from simcord.builders import ChannelHandle, GuildHandle
from simcord.results import InteractionResult

from bot.discord_bot import EXTENSIONS, WiroBot
from bot.jobs.job import Job
from bot.runtime import Runtime, open_runtime
from bot.settings import Settings
from bot.store import HistoryQuery
from tests.wiro_standin import WiroStandIn

#: Real seconds to wait for the engine before a test fails.
ENGINE_WAIT = 10.0


class Harness:
    def __init__(
        self,
        wiro: WiroStandIn,
        settings: Settings,
        extensions: tuple[str, ...],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.wiro = wiro
        self.settings = settings
        self.extensions = extensions
        self._monkeypatch = monkeypatch
        self._runtime_stack = AsyncExitStack()
        self.runtime: Runtime
        self.bot: WiroBot
        self.env: simcord.Env
        self.age_restricted: set[str] = {"after-dark"}
        self.upload_limit: int | None = None
        self.advertised_upload_limit: int | None = None
        self.rejected_uploads = 0
        self._install_fakes()

    # -- life ----------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._open_bot()
        # An auto-sharded bot asks Discord how many shards; the simulated one says one.
        self.env = simcord.Env(self.bot, shard_count=None if self.bot.shard_count else 1)
        await self.env.start()
        env = self.env
        self.guild: GuildHandle = env.create_guild("Wiro Lovers")
        self.channel: ChannelHandle = self.guild.create_text_channel("art")
        self.nsfw_channel: ChannelHandle = self.guild.create_text_channel("after-dark")
        moderators = self.guild.create_role(
            "Moderators", permissions=discord.Permissions(manage_messages=True)
        )
        self.alice: MemberActor = self.guild.add_member(env.create_user("alice"))
        self.bob: MemberActor = self.guild.add_member(env.create_user("bob"))
        self.mod: MemberActor = self.guild.add_member(env.create_user("mod"), roles=[moderators])

    async def _open_bot(self) -> None:
        self.runtime = await self._runtime_stack.enter_async_context(open_runtime(self.settings))
        self.bot = WiroBot(self.settings, runtime=self.runtime, extensions=self.extensions)

    async def restart(self) -> None:
        """Stop the bot and its engine (jobs stay in the database), start new ones on the
        same database and the same simulated Discord."""
        await self._runtime_stack.aclose()
        self._runtime_stack = AsyncExitStack()
        await self._open_bot()
        await self.env.restart_bot(self.bot)

    async def close(self) -> None:
        try:
            await self.env.shutdown()
        finally:
            await self._runtime_stack.aclose()
        if self.env.check_errors:
            self.env._raise_errors_since(self.env._errors_acknowledged)

    # -- waiting -------------------------------------------------------------------------------

    async def tick(self, times: int = 1) -> None:
        """Let the bot's status ticker run `times` times (virtual time)."""
        await self.env.advance_time(self.settings.discord.status_edit_interval * times)

    async def until(
        self, job_id: int, predicate: Callable[[Job], bool], within: float = ENGINE_WAIT
    ) -> Job:
        """Wait (real time) until the engine's view of a job satisfies `predicate`."""
        deadline = time.monotonic() + within
        while True:
            job = await self.runtime.engine.get(job_id)
            assert job is not None, f"job {job_id} does not exist"
            if predicate(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} never got there; it is {job.status}")
            await asyncio.sleep(0.01)

    async def queued(self, job: Job) -> Job:
        """Wait until Wiro has the job's task, then let the status message catch up."""
        job = await self.until(job.id, lambda j: j.task_id is not None)
        await self.tick()
        return job

    async def finish(self, job: Job) -> Job:
        """Make Wiro finish the job's task (the way its outcome says); wait until the bot has
        posted the result. Returns the job as stored."""
        job = await self.until(job.id, lambda j: j.task_id is not None)
        assert job.task_id is not None
        self.wiro.finish(job.task_id)
        return await self.settle_final(job)

    async def settle_final(self, job: Job) -> Job:
        """Wait until the job has ended, then until the bot has posted it."""
        await self.until(job.id, lambda j: j.status.is_final)
        for _ in range(5):
            await self.tick()
            stored = await self.runtime.store.jobs.get(job.id)
            assert stored is not None
            if stored.posted_at is not None:
                return stored
        raise AssertionError(f"job {job.id} ended but was never posted")

    # -- looking -------------------------------------------------------------------------------

    async def last_job(self) -> Job:
        jobs = await self.runtime.store.jobs.history(HistoryQuery(limit=1))
        assert jobs, "no job was created"
        return jobs[0]

    async def job_count(self) -> int:
        return await self.runtime.store.jobs.count_history(HistoryQuery())

    def message(self, result: InteractionResult) -> discord.Message:
        """The message an interaction answered with, as it is now."""
        response = result.response
        assert response is not None, "the interaction has no response message"
        return response.message

    def message_by_id(self, channel: ChannelHandle, message_id: int) -> discord.Message:
        for message in channel.history():
            if message.id == message_id:
                return message
        raise AssertionError(f"message {message_id} is not in #{channel.name}")

    def set_upload_limit(self, limit: int, *, advertise: bool = True) -> None:
        self.upload_limit = limit
        self.advertised_upload_limit = limit if advertise else None

    # -- protocol-level fakes simcord lacks ----------------------------------------------------

    def _install_fakes(self) -> None:
        original_channel = simcord.backend.serializers.channel_payload
        original_base = simcord.interactions.base_payload
        original_dispatch = simcord.http.router.dispatch

        def channel_payload(backend: Any, channel: Any) -> Any:
            payload = original_channel(backend, channel)
            if getattr(channel, "name", None) in self.age_restricted:
                payload = {**payload, "nsfw": True}
            return payload

        def base_payload(*args: Any, **kwargs: Any) -> Any:
            record, payload = original_base(*args, **kwargs)
            if self.advertised_upload_limit is not None:
                payload["attachment_size_limit"] = self.advertised_upload_limit
            return record, payload

        def dispatch(backend: Any, method: str, path: str, **kwargs: Any) -> Any:
            files = kwargs.get("files") or []
            if self.upload_limit is not None and files:
                size = sum(_file_size(f) for f in files)
                if size > self.upload_limit:
                    self.rejected_uploads += 1
                    raise BackendError(413, 40005, "Request entity too large")
            return original_dispatch(backend, method, path, **kwargs)

        patch = self._monkeypatch.setattr
        patch(simcord.backend.serializers, "channel_payload", channel_payload)
        patch(simcord.interactions, "base_payload", base_payload)
        patch(simcord.http.router, "dispatch", dispatch)


def _file_size(file: Any) -> int:
    fp = getattr(file, "fp", None)
    if fp is None:
        return 0
    position = fp.tell()
    fp.seek(0, 2)
    size = int(fp.tell())
    fp.seek(position)
    return size


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def extensions() -> tuple[str, ...]:
    """The bot's extensions; override to load other cogs."""
    return EXTENSIONS


@pytest.fixture
def discord_settings(tmp_path: Path, wiro: WiroStandIn) -> Settings:
    return Settings(
        discord={"status_edit_interval": 0.5},
        wiro={
            "api_key": wiro.api_key,
            "api_secret": wiro.api_secret,
            "base_url": wiro.base_url,
            # Polling: simcord's virtual clock cannot park a task waiting on a live socket.
            # The socket path is tested in tests/jobs/test_follow.py.
            "socket_url": "",
        },
        database={"path": tmp_path / "wirobot.db"},
        jobs={"poll_min_interval": 0.02, "poll_max_interval": 0.1},
        # No web server unless a test starts one (on a free port): see tests/web/.
        web={"port": 0},
    )


@pytest.fixture
async def _harness(
    wiro: WiroStandIn,
    discord_settings: Settings,
    extensions: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Harness]:
    wiro.hold()
    h = Harness(wiro, discord_settings, extensions, monkeypatch)
    await h.open()
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
def harness(_harness: Harness) -> Iterator[Harness]:
    """The running harness; see this module's docstring."""
    # Test code sees simcord's clock too (what the simcord pytest plugin does for its env).
    with _harness.env.time_context():
        yield _harness
