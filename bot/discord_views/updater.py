"""Keeping each job's Discord message in step with the engine, and posting its result once.

A ticker beats several times per `status_edit_interval` while any job is followed. Each beat
reads the state of every followed job whose message was not edited within the last interval
(cheap: live jobs are in memory) and edits the messages whose words changed, so a message is
edited at most once per interval, the last state wins, the final state is always delivered,
and a result goes out within a beat of the job's end when its message is not rate-limited.
Beats are counted rather than timed, so the ticker works the same on a virtual clock. When a
job has ended its result (or its failure) is delivered and `posted_at` stored, so it is
posted once, also across restarts.

Messages are edited through the interaction's webhook while its token is valid (15 minutes);
after that, or when the token is refused, through the channel as the bot's own messages, and
results are sent as new channel messages.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import tasks

from bot.catalog.spec import ModelSpec
from bot.discord_views import images, render
from bot.discord_views.buttons import result_view, status_view
from bot.discord_views.launch import age_restricted
from bot.jobs.job import Job, JobState

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

log = logging.getLogger(__name__)

#: Interaction tokens last 15 minutes; stop using one a little before.
TOKEN_LIFETIME = 14.5 * 60
#: Delivering a final state is given up after this many failed ticks (retried at next start).
MAX_FAILURES = 5
#: Discord's answer to a payload over the upload limit.
_TOO_LARGE_CODE = 40005
#: Discord's answers to an expired or unknown interaction token.
_TOKEN_GONE_CODES = frozenset({10015, 50027})


@dataclass
class Target:
    """Where a followed job is shown."""

    job_id: int
    guild_id: int | None
    channel_id: int | None
    message_id: int | None = None
    token: str | None = None
    #: When the interaction was created, unix seconds on Discord's clock.
    interaction_at: float | None = None
    #: The upload limit the interaction reported for its channel.
    filesize_limit: int | None = None
    #: False while the first status message is being sent.
    ready: bool = True
    shown: str | None = None
    failures: int = 0
    #: The beat at which the message was last sent or edited.
    edited_at: int = -(2**31)


#: How often the ticker looks, at most: a result waits for at most one beat.
BEAT = 0.25


class StatusUpdater:
    def __init__(self, bot: WiroBot, interval: float) -> None:
        self._bot = bot
        self._targets: dict[int, Target] = {}
        #: Beats per status_edit_interval: a message is edited at most once in that many.
        self._beats_per_edit = max(1, math.ceil(interval / BEAT - 1e-9))
        self._beat = 0
        self._ticker = tasks.loop(seconds=interval / self._beats_per_edit)(self._tick)
        # Channel and guild caches (age restriction, upload limits) are filled at READY.
        self._ticker.before_loop(bot.wait_until_ready)

    # -- following jobs ------------------------------------------------------------------------

    async def resume(self) -> None:
        """Follow the Discord jobs the database says are unfinished or not yet posted."""
        store = self._bot.runtime.store
        for job in [*await store.jobs.unfinished(), *await store.jobs.unposted()]:
            if job.requester.source != "discord" or job.id in self._targets:
                continue
            self._targets[job.id] = Target(
                job_id=job.id,
                guild_id=job.guild_id,
                channel_id=job.channel_id,
                message_id=job.status_message_id,
                token=job.interaction_token,
                interaction_at=job.interaction_at,
            )
        if self._targets:
            log.info("following %d job(s) from before the restart", len(self._targets))
            self._wake()

    def follow(self, job: Job, *, filesize_limit: int | None = None) -> Target:
        """Start following a job whose first status message is about to be sent."""
        target = Target(
            job.id, job.guild_id, job.channel_id, filesize_limit=filesize_limit, ready=False
        )
        self._targets[job.id] = target
        self._wake()
        return target

    async def show_first(self, target: Target, interaction: discord.Interaction[Any]) -> None:
        """Turn the deferred answer of `interaction` into the job's status message."""
        job = await self._job(target.job_id)
        if job is None:
            return
        words = self._words(job)
        try:
            message = await interaction.edit_original_response(
                embed=render.status_embed(
                    job, self._model(job), position=self._position(job), progress=job.progress
                ),
                view=status_view(job.id),
            )
        finally:
            target.ready = True
        target.message_id = message.id
        target.edited_at = self._beat
        target.token = interaction.token
        target.interaction_at = interaction.created_at.timestamp()
        target.shown = words
        await self._bot.runtime.store.jobs.update(
            job.id,
            status_message_id=message.id,
            interaction_token=interaction.token,
            interaction_at=target.interaction_at,
        )

    async def stop(self) -> None:
        self._ticker.cancel()

    def _wake(self) -> None:
        if not self._ticker.is_running():
            self._ticker.start()

    # -- each tick -----------------------------------------------------------------------------

    async def _tick(self) -> None:
        self._beat += 1
        due = self._beat - self._beats_per_edit
        targets = [t for t in self._targets.values() if t.ready and t.edited_at <= due]
        if targets:
            await asyncio.gather(*(self._update(t) for t in targets))
        if not self._targets:
            self._ticker.stop()

    async def _update(self, target: Target) -> None:
        try:
            job = await self._job(target.job_id)
            if job is None:
                self._targets.pop(target.job_id, None)
                return
            if job.status.is_final:
                target.edited_at = self._beat
                await self._deliver_final(target, job)
                self._targets.pop(target.job_id, None)
                return
            words = self._words(job)
            if words != target.shown and target.message_id is not None:
                embed = render.status_embed(
                    job, self._model(job), position=self._position(job), progress=job.progress
                )
                target.edited_at = self._beat
                if await self._edit_or_gone(target, embed=embed, view=status_view(job.id)):
                    target.shown = words
        except Exception:
            target.failures += 1
            log.exception("job %s: could not update its Discord message", target.job_id)
            if target.failures >= MAX_FAILURES:
                log.error("job %s: giving up on its Discord message for now", target.job_id)
                self._targets.pop(target.job_id, None)

    async def _job(self, job_id: int) -> Job | None:
        return await self._bot.runtime.engine.get(job_id)

    def _words(self, job: Job) -> str:
        return render.state_words(job, self._position(job), job.progress)

    def _position(self, job: Job) -> int | None:
        return self._bot.runtime.engine.queue_position(job.id)

    def _model(self, job: Job) -> ModelSpec | None:
        return self._bot.runtime.catalog.get(job.model)

    # -- the end -------------------------------------------------------------------------------

    async def _deliver_final(self, target: Target, job: Job) -> None:
        if job.posted_at is not None:
            return
        result_id: int | None = None
        if job.status is JobState.SUCCEEDED and job.outputs:
            result_id = await self._post_result(target, job)
        else:
            embed = render.ending_embed(job, self._model(job))
            gone = target.message_id is None or not await self._edit_or_gone(
                target, embed=embed, view=None
            )
            if gone:
                message = await self._channel(target).send(embed=embed)
                result_id = message.id
        posted_at = time.time()
        await self._bot.runtime.store.jobs.update(
            job.id, result_message_id=result_id, posted_at=posted_at
        )
        self._bot.runtime.metrics.job_posted(posted_at - job.created_at)

    async def _post_result(self, target: Target, job: Job) -> int:
        model = self._model(job)
        spoiler = bool(model and model.nsfw) and not self._age_restricted(target)
        limit = self._upload_limit(target, job)
        start = 0
        while True:
            upload = await images.fit(job.outputs, limit, spoiler=spoiler, start=start)
            embed = render.result_embed(job, model, links=upload.links)
            try:
                return await self._put_result(target, job, embed, upload)
            except discord.HTTPException as exc:
                if exc.code != _TOO_LARGE_CODE and exc.status != 413:
                    raise
                if upload.tier >= images.TIERS - 1:
                    raise
                log.info("job %s: images over Discord's limit; trying smaller", job.id)
                start = upload.tier + 1
            finally:
                for file in upload.files:
                    file.close()

    async def _put_result(
        self, target: Target, job: Job, embed: discord.Embed, upload: images.Upload
    ) -> int:
        view = result_view(job.id)
        if target.message_id is not None and self._token_valid(target):
            assert target.token is not None
            try:
                edited = await self._webhook(target.token).edit_message(
                    target.message_id, embed=embed, attachments=upload.files, view=view
                )
                return edited.id
            except discord.HTTPException as exc:
                if _token_gone(exc):
                    target.token = None
                elif isinstance(exc, discord.NotFound):
                    target.message_id = None  # someone deleted the status message
                else:
                    raise
                for file in upload.files:
                    file.reset()
        message = await self._channel(target).send(embed=embed, files=upload.files, view=view)
        if target.message_id is not None:
            pointer = discord.Embed(
                title="Done",
                description=f"The images are below: {message.jump_url}",
                colour=render.DONE,
            )
            pointer.set_footer(text=f"Job {job.id}")
            await self._edit_or_gone(target, embed=pointer, view=None)
        return message.id

    # -- talking to Discord --------------------------------------------------------------------

    async def _edit_or_gone(self, target: Target, **fields: Any) -> bool:
        """Edit the status message; False (and forget it) when it no longer exists."""
        try:
            await self._edit(target, **fields)
        except discord.NotFound:
            target.message_id = None
            return False
        return True

    async def _edit(self, target: Target, **fields: Any) -> None:
        assert target.message_id is not None
        if self._token_valid(target):
            assert target.token is not None
            try:
                await self._webhook(target.token).edit_message(target.message_id, **fields)
                return
            except discord.HTTPException as exc:
                if not _token_gone(exc):
                    raise
                target.token = None
        await self._channel(target).get_partial_message(target.message_id).edit(**fields)

    def _token_valid(self, target: Target) -> bool:
        if target.token is None or target.interaction_at is None:
            return False
        age = discord.utils.utcnow().timestamp() - target.interaction_at
        return age < TOKEN_LIFETIME

    def _webhook(self, token: str) -> discord.Webhook:
        assert self._bot.application_id is not None
        return discord.Webhook.partial(self._bot.application_id, token, client=self._bot)

    def _channel(self, target: Target) -> discord.PartialMessageable:
        if target.channel_id is None:
            raise RuntimeError(f"job {target.job_id} has no channel")
        return self._bot.get_partial_messageable(target.channel_id, guild_id=target.guild_id)

    def _age_restricted(self, target: Target) -> bool:
        channel = self._bot.get_channel(target.channel_id) if target.channel_id else None
        return age_restricted(channel)

    def _upload_limit(self, target: Target, job: Job) -> int:
        if target.filesize_limit:
            return target.filesize_limit
        guild = self._bot.get_guild(job.guild_id) if job.guild_id else None
        return guild.filesize_limit if guild else discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES


def _token_gone(exc: discord.HTTPException) -> bool:
    return exc.code in _TOKEN_GONE_CODES or exc.status == 401
