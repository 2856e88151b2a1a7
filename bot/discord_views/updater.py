"""Keeping each job's Discord message in step with the engine, and posting its result once.

A ticker beats several times per `status_edit_interval` while any job is followed. Each beat
looks at the followed jobs that may need an edit (the engine announced a change, or the waiting
line moved them) and whose message was not edited within the last interval, and edits the
messages whose words changed, so a message is edited at most once per interval, the last state
wins, the final state is always delivered, and a result goes out within a beat of the job's end
when its message is not rate-limited. A quiet beat costs nothing per followed job; one after the
line moved, one look at each place.
Beats are counted rather than timed, so the ticker works the same on a virtual clock.

Each result is posted once, across restarts and across processes sharing one database: a
process follows the jobs it holds (those it started, and those its engine takes over from a
process that died: the engine's ADOPTED event), and before posting a result it claims the
posting in the store (compare-and-set, a lease renewed while the post is under way); after
the post it stores `posted_at`. A poster that died between the two left its claim behind: the
next one first looks at the status message (through the interaction's webhook, which shows
what members see) and records the result it finds there rather than post it again. When that
message can no longer be read (the token expired, or the result went to the channel), the
post is given up with a warning rather than risk a second one: without Read Message History
the bot cannot see the channel, and a missing result is plainer to a member (the job is in
/history) than a double. With several processes, each also looks now and then for results
nobody posted (their process died after the job ended) and posts them.

Messages are edited through the interaction's webhook while its token is valid (15 minutes);
after that, or when the token is refused, through the channel as the bot's own messages, and
results are sent as new channel messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import tasks

from bot import progress as progress_text
from bot.catalog.spec import ModelSpec
from bot.discord_views import images, render
from bot.discord_views.buttons import result_view, status_view
from bot.discord_views.launch import age_restricted
from bot.jobs.events import EventKind, JobEvent, Subscription
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
    #: The place in line the message shows (None: not waiting, or not shown).
    place: int | None = None


#: How often the ticker looks, at most: a result waits for at most one beat.
BEAT = 0.25
#: Places up to this are always shown exactly; further back a message is edited when its place
#: moved by a tenth, so a line of thousands does not mean thousands of edits each time one starts.
EXACT_PLACES = 10


class StatusUpdater:
    def __init__(self, bot: WiroBot, interval: float) -> None:
        self._bot = bot
        self._targets: dict[int, Target] = {}
        #: Followed jobs to look at, at the next beat their message may be edited.
        self._pending: set[int] = set()
        #: The places in line the last beat saw (the engine keeps the same dict while they hold).
        self._places: dict[int, int] = {}
        #: The engine's events while any job is followed: which jobs changed.
        self._events: Subscription | None = None
        #: Beats per status_edit_interval: a message is edited at most once in that many.
        self._beats_per_edit = max(1, math.ceil(interval / BEAT - 1e-9))
        self._beat = 0
        self._ticker = tasks.loop(seconds=interval / self._beats_per_edit)(self._tick)
        # Channel and guild caches (age restriction, upload limits) are filled at READY.
        self._ticker.before_loop(bot.wait_until_ready)
        #: Stops hearing the engine's ADOPTED events.
        self._stop_adopting: Callable[[], None] | None = None
        #: Looks for results nobody posted, when processes share the database.
        self._sweeper: asyncio.Task[None] | None = None

    # -- following jobs ------------------------------------------------------------------------

    async def resume(self) -> None:
        """Follow the Discord jobs this process's engine holds (it took them over at start)
        and those ended but not yet posted; from now on, also each job the engine takes over
        later. With several processes, one claims each post: see `_deliver_final`."""
        runtime = self._bot.runtime
        engine, store = runtime.engine, runtime.store
        if self._stop_adopting is None:
            self._stop_adopting = engine.events.listen(self._adopted, [EventKind.ADOPTED])
        await self._forget_expired_tokens()
        held = [job for job in await store.jobs.unfinished() if engine.holds(job.id)]
        followed = 0
        for job in [*held, *await store.jobs.unposted()]:
            followed += self._follow_stored(job)
        if followed:
            log.info("following %d job(s) from before the restart", followed)
        if store.jobs.shared and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep(), name="wirobot-unposted")

    def _adopted(self, event: JobEvent) -> None:
        if self._follow_stored(event.job):
            log.info("job %s: taken over; following it here", event.job.id)

    def _follow_stored(self, job: Job) -> bool:
        """Follow a job from its stored record (no first message to send); False when it is
        not a Discord job or is followed already."""
        if job.requester.source != "discord" or job.id in self._targets:
            return False
        self._targets[job.id] = Target(
            job_id=job.id,
            guild_id=job.guild_id,
            channel_id=job.channel_id,
            message_id=job.status_message_id,
            token=job.interaction_token,
            interaction_at=job.interaction_at,
        )
        self._pending.add(job.id)
        self._wake()
        return True

    async def _sweep(self) -> None:
        """Now and then (processes sharing the database): post the results whose process
        died after the job ended, and stop following jobs another process has taken."""
        lease = self._bot.runtime.engine.settings.claim_lease_seconds
        while True:
            await asyncio.sleep(lease)
            try:
                await self._sweep_once(lease)
            except Exception:
                log.exception("looking for unposted results failed; trying again in %.0f s", lease)

    async def _sweep_once(self, lease: float) -> None:
        runtime = self._bot.runtime
        now = time.time()
        for job in await runtime.store.jobs.orphaned_posts(now=now, ended_before=now - lease):
            self._follow_stored(job)
        engine = runtime.engine
        for job_id, target in list(self._targets.items()):
            if not target.ready or engine.holds(job_id):
                continue
            stored = await runtime.store.jobs.get(job_id)
            if stored is None:
                self._targets.pop(job_id, None)
            elif stored.status.is_final:
                self._pending.add(job_id)  # delivered here unless another process claims it
            elif await runtime.store.jobs.owner_of(job_id) != engine.owner:
                self._targets.pop(job_id, None)  # another process runs it and follows it
        if self._pending:
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
        """Answer `interaction` with the job's status message (or turn its deferred answer
        into it)."""
        job = await self._job(target.job_id)
        if job is None:
            return
        place = self._bot.runtime.engine.queue_position(job.id)
        words = self._words(job, place)
        embed = render.status_embed(job, self._model(job), position=place, progress=job.progress)
        view = status_view(job.id)
        try:
            if interaction.response.is_done():
                message_id = (await interaction.edit_original_response(embed=embed, view=view)).id
            else:
                answer = await interaction.response.send_message(embed=embed, view=view)
                message_id = answer.message_id or (await interaction.original_response()).id
        finally:
            target.ready = True
        target.message_id = message_id
        target.edited_at = self._beat
        target.token = interaction.token
        target.interaction_at = interaction.created_at.timestamp()
        target.shown = words
        target.place = place
        await self._bot.runtime.store.jobs.update(
            job.id,
            status_message_id=message_id,
            interaction_token=interaction.token,
            interaction_at=target.interaction_at,
        )

    async def stop(self) -> None:
        self._ticker.cancel()
        self._unsubscribe()
        if self._stop_adopting is not None:
            self._stop_adopting()
            self._stop_adopting = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    def _wake(self) -> None:
        if self._events is None:
            self._events = self._bot.runtime.engine.subscribe()
        if not self._ticker.is_running():
            self._ticker.start()

    def _unsubscribe(self) -> None:
        if self._events is not None:
            self._events.close()
            self._events = None

    # -- each tick -----------------------------------------------------------------------------

    async def _tick(self) -> None:
        self._beat += 1
        due = self._beat - self._beats_per_edit
        engine = self._bot.runtime.engine
        # One pass over the waiting line for the whole beat, and no task for a message whose
        # words stay the same: a beat's cost must not grow with the line times the followers.
        if self._events is not None:
            for event in self._events.take():
                if event.job.id in self._targets:
                    self._pending.add(event.job.id)
        # Places in line once per interval: no message can show them more often.
        places = self._places
        if self._beat % self._beats_per_edit == 0 or not places:
            places = engine.queue_positions()
            if places is not self._places:
                self._places = places
                self._note_moves(places)
        work = []
        for job_id in list(self._pending):
            target = self._targets.get(job_id)
            if target is None:
                self._pending.discard(job_id)
                continue
            if not target.ready or target.edited_at > due:
                continue  # looked at again once its message may be edited
            self._pending.discard(job_id)
            live = engine.peek(job_id)
            if live is not None and not self._worth_editing(target, live, places):
                continue
            work.append(self._update(target, places))
        if work:
            await asyncio.gather(*work)
        if not self._targets:
            self._ticker.stop()
            self._unsubscribe()

    def _note_moves(self, places: dict[int, int]) -> None:
        """The line moved: the waiting jobs whose shown place is now worth correcting."""
        targets, pending = self._targets, self._pending
        for job_id, place in places.items():
            target = targets.get(job_id)
            if target is not None and target.place != place and _worth_showing(target, place):
                pending.add(job_id)

    def _worth_editing(self, target: Target, job: Job, places: dict[int, int]) -> bool:
        if job.status.is_final:
            return True
        place = places.get(job.id)
        if self._words(job, place) == target.shown:
            return False
        return place is None or _worth_showing(target, place)

    async def _update(self, target: Target, places: dict[int, int]) -> None:
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
            place = places.get(job.id)
            words = self._words(job, place)
            if words != target.shown and target.message_id is not None:
                embed = render.status_embed(
                    job, self._model(job), position=place, progress=job.progress
                )
                target.edited_at = self._beat
                if await self._edit_or_gone(target, embed=embed, view=status_view(job.id)):
                    target.shown = words
                    target.place = place
        except Exception:
            target.failures += 1
            log.exception("job %s: could not update its Discord message", target.job_id)
            if target.failures >= MAX_FAILURES:
                log.error("job %s: giving up on its Discord message for now", target.job_id)
                self._targets.pop(target.job_id, None)
            else:
                self._pending.add(target.job_id)

    async def _job(self, job_id: int) -> Job | None:
        return await self._bot.runtime.engine.get(job_id)

    @staticmethod
    def _words(job: Job, place: int | None) -> str:
        """What the message says; it is edited only when this changes."""
        words = render.state_words(job, place, job.progress)
        if job.status is JobState.RUNNING and job.progress is not None:
            words += "\n" + progress_text.describe(job.progress)
        return words

    def _model(self, job: Job) -> ModelSpec | None:
        return self._bot.runtime.catalog.get(job.model)

    # -- the end -------------------------------------------------------------------------------

    async def _deliver_final(self, target: Target, job: Job) -> None:
        if job.posted_at is not None:
            return
        runtime = self._bot.runtime
        lease = runtime.engine.settings.claim_lease_seconds
        poster = runtime.engine.owner
        now = time.time()
        claim = await runtime.store.jobs.claim_posting(job.id, poster, now=now, until=now + lease)
        if claim is None:
            log.debug("job %s: posted, or being posted, by another process", job.id)
            return
        self._take_stored_message(target, job)
        async with self._posting(job.id, poster, lease):
            shown = await self._shown_result(target, job) if claim.interrupted else False
            if shown is None:
                result_id = None
            elif shown:
                log.info("job %s: its result was already posted; recording it", job.id)
                result_id = target.message_id
            else:
                result_id = await self._send_final(target, job)
        await self._record_posted(job, result_id)

    async def _send_final(self, target: Target, job: Job) -> int | None:
        if job.status is JobState.SUCCEEDED and job.outputs:
            return await self._post_result(target, job)
        embed = render.ending_embed(job, self._model(job))
        gone = target.message_id is None or not await self._edit_or_gone(
            target, embed=embed, view=None
        )
        if gone:
            message = await self._channel(target).send(embed=embed)
            return message.id
        return None

    @staticmethod
    def _take_stored_message(target: Target, job: Job) -> None:
        """A job followed from before its first message was stored (another process sent it
        meanwhile): the stored message and token are the ones to edit."""
        if target.message_id is None and job.status_message_id is not None:
            target.message_id = job.status_message_id
            target.token = job.interaction_token
            target.interaction_at = job.interaction_at

    @contextlib.asynccontextmanager
    async def _posting(self, job_id: int, poster: str, lease: float) -> AsyncIterator[None]:
        """Keep the posting claim alive while a slow upload is under way."""
        store = self._bot.runtime.store

        async def renew() -> None:
            while True:
                await asyncio.sleep(lease / 3)
                await store.jobs.renew_posting(job_id, poster, until=time.time() + lease)

        renewing = asyncio.create_task(renew(), name=f"wirobot-posting-{job_id}")
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewing

    async def _shown_result(self, target: Target, job: Job) -> bool | None:
        """After a poster died mid-post: whether the status message already shows the
        result (True), shows the job unfinished (False: post it), or cannot be read (None:
        it may have gone to the channel, which the bot cannot read; not posted again)."""
        if target.message_id is not None and self._token_valid(target):
            assert target.token is not None
            try:
                message = await self._webhook(target.token).fetch_message(target.message_id)
            except discord.NotFound:
                target.message_id = None
            except discord.HTTPException as exc:
                if not _token_gone(exc):
                    raise
            else:
                if job.status is JobState.SUCCEEDED and job.outputs:
                    pointed = any(e.title == "Done" for e in message.embeds)
                    return bool(message.attachments) or pointed
                return False  # an ending is an edit of this message: editing again is safe
        log.warning(
            "job %s: the process posting its result stopped midway and the result cannot be "
            "checked; not posting it again (it is in /history)",
            job.id,
        )
        return None

    async def _record_posted(self, job: Job, result_id: int | None) -> None:
        posted_at = time.time()
        await self._bot.runtime.store.jobs.update(
            job.id, result_message_id=result_id, posted_at=posted_at
        )
        self._bot.runtime.metrics.job_posted(posted_at - job.created_at)
        await self._forget_expired_tokens()

    async def _forget_expired_tokens(self) -> None:
        """Expired interaction tokens are secrets of no use: the database drops them (at
        start, and whenever a result is delivered)."""
        issued_before = discord.utils.utcnow().timestamp() - TOKEN_LIFETIME
        await self._bot.runtime.store.jobs.forget_interaction_tokens(issued_before=issued_before)

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


def _worth_showing(target: Target, place: int) -> bool:
    """Near the front every move; far back, a move by a tenth of the place shown."""
    if target.place is None or place <= EXACT_PLACES:
        return True
    return abs(target.place - place) * 10 >= target.place


def _token_gone(exc: discord.HTTPException) -> bool:
    return exc.code in _TOKEN_GONE_CODES or exc.status == 401
