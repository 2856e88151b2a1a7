"""What a job looks like in Discord: status, result and failure embeds, in plain words.

Pure functions of a job snapshot (and the model's spec): no I/O, no Discord calls, so every
wording can be read and tested in one place.
"""

from __future__ import annotations

import discord

from bot import progress as progress_text
from bot.catalog.spec import ModelSpec
from bot.catalog.validation import format_number
from bot.discord_views.fit import fit_embed
from bot.jobs.job import ErrorKind, Job, JobState
from bot.money import usd
from bot.wiro.types import TaskProgress

#: Embed colours by outcome.
WORKING = discord.Colour.blurple()
DONE = discord.Colour.green()
FAILED = discord.Colour.red()
STOPPED = discord.Colour.light_grey()

#: Inputs shown elsewhere in the result embed, or not worth repeating.
_NOT_LISTED = frozenset({"prompt", "seed", "width", "height"})
_PROMPT_LIMIT = 1000


def state_words(job: Job, position: int | None = None, progress: TaskProgress | None = None) -> str:
    """The job's state as a person would say it: "Waiting for a free slot (position 3)"."""
    if job.status in (JobState.CREATED, JobState.WAITING):
        if job.waiting_for:
            return f"Waiting: {job.waiting_for}"
        return (
            f"Waiting for a free slot (position {position})"
            if position
            else "Waiting for a free slot"
        )
    if job.status is JobState.SUBMITTED:
        return "Sending to Wiro…"
    if job.status is JobState.QUEUED:
        return "Queued at Wiro"
    if job.status is JobState.RUNNING:
        if progress is not None:
            return f"Generating… {progress_text.percent(progress)}%"
        return "Generating…"
    if job.status is JobState.SUCCEEDED:
        return "Done"
    if job.status is JobState.CANCELLED:
        return "Cancelled"
    if job.status is JobState.TIMED_OUT:
        return "Timed out"
    return "Failed"


def model_name(job: Job, model: ModelSpec | None) -> str:
    return f"{model.display_name} (`{model.slug}`)" if model else f"`{job.model}`"


def status_embed(
    job: Job,
    model: ModelSpec | None,
    *,
    position: int | None = None,
    progress: TaskProgress | None = None,
) -> discord.Embed:
    """The live status message of an unfinished job."""
    embed = discord.Embed(title=state_words(job, position, progress), colour=WORKING)
    embed.description = _prompt(job.prompt)
    if job.status is JobState.RUNNING and progress is not None:
        embed.add_field(name="Progress", value=progress_text.describe(progress), inline=False)
    embed.add_field(name="Model", value=model_name(job, model), inline=True)
    embed.add_field(name="Started", value=f"<t:{int(job.created_at)}:R>", inline=True)
    if job.user_id is not None:
        embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.add_field(name="Price", value=price_words(job), inline=True)
    embed.set_footer(text=f"Job {job.id}")
    return fit_embed(embed)


def result_embed(
    job: Job, model: ModelSpec | None, *, links: list[str] | None = None
) -> discord.Embed:
    """The embed that goes with a finished job's images."""
    embed = discord.Embed(title="Done", colour=DONE)
    embed.description = _prompt(job.prompt)
    embed.add_field(name="Model", value=model_name(job, model), inline=True)
    embed.add_field(name="Seed", value=str(job.seed), inline=True)
    size = _size(job)
    if size:
        embed.add_field(name="Size", value=size, inline=True)
    used = inputs_used(job)
    if used:
        embed.add_field(name="Inputs", value=used, inline=False)
    if job.elapsed_seconds is not None:
        embed.add_field(name="Time", value=seconds(job.elapsed_seconds), inline=True)
    if job.cost is not None:
        embed.add_field(name="Cost", value=usd(job.cost), inline=True)
    if job.user_id is not None:
        embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    if links:
        lines = [f"[Image {i}]({url})" for i, url in enumerate(links, 1)]
        embed.add_field(
            name="Images (too large to attach; links expire)",
            value="\n".join(lines)[:1024],
            inline=False,
        )
    embed.set_footer(text=f"Job {job.id}")
    return fit_embed(embed)


def ending_embed(job: Job, model: ModelSpec | None) -> discord.Embed:
    """The status message of a job that failed, was cancelled or timed out."""
    colour = STOPPED if job.status is JobState.CANCELLED else FAILED
    embed = discord.Embed(title=state_words(job), colour=colour)
    embed.description = failure_words(job)
    embed.add_field(name="Prompt", value=_prompt(job.prompt, 1024), inline=False)
    embed.add_field(name="Model", value=model_name(job, model), inline=True)
    if job.user_id is not None:
        embed.add_field(name="Requested by", value=f"<@{job.user_id}>", inline=True)
    embed.set_footer(text=f"Job {job.id}")
    return fit_embed(embed)


def failure_words(job: Job) -> str:
    """Why a job did not succeed, for the people in the channel."""
    error = (job.error or "").strip()
    if job.status is JobState.CANCELLED:
        if job.error_kind is ErrorKind.CANCELLED_AT_WIRO:
            return "The task was cancelled at Wiro."
        return "This job was cancelled."
    if job.status is JobState.TIMED_OUT:
        return error or "Wiro did not finish in time, so the job was stopped."
    kind = job.error_kind
    if kind is ErrorKind.INSUFFICIENT_BALANCE:
        return (
            "Wiro refused the job: the Wiro project's balance is too low.\n"
            "**Server admins:** top up the Wiro project's balance (wiro.ai → your project → "
            "billing), then try again. Nothing was charged for this job."
        )
    if kind is ErrorKind.TASK_FAILED:
        reason = _last_line(error) or "no reason given"
        return f"The model failed at Wiro. Wiro's reason: `{reason}`\nFailed tasks are not billed."
    if kind is ErrorKind.AUTH:
        said = f" {error}" if error else ""  # what exactly: unknown key, signature, IP
        return f"Wiro refused the bot's credentials.{said} Only the bot's owner can fix this."
    if kind is ErrorKind.REJECTED:
        return f"Wiro refused these inputs: {error}" if error else "Wiro refused these inputs."
    if kind is ErrorKind.UNAVAILABLE:
        return f"Wiro could not be reached or had trouble ({error}). Try again in a few minutes."
    return error or "The job failed."


def price_words(job: Job) -> str:
    """What the job will cost, as foreseen: "about $0.01", or "unknown"."""
    return "unknown" if job.estimate is None else f"about {usd(job.estimate)}"


def inputs_used(job: Job) -> str:
    """The resolved inputs, one line: "steps 30 · guidance 7.5 · scheduler DDIMScheduler"."""
    parts: list[str] = []
    for option, value in job.inputs.items():
        if option in _NOT_LISTED or value in (None, ""):
            continue
        shown = format_number(value) if isinstance(value, int | float) else str(value)
        if len(shown) > 60:
            shown = shown[:57] + "…"
        parts.append(f"{option} {shown}")
    return " · ".join(parts)[:1024]


def seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s"


def _size(job: Job) -> str:
    width, height = job.inputs.get("width"), job.inputs.get("height")
    return f"{width}×{height}" if width and height else ""


def _prompt(prompt: str, limit: int = _PROMPT_LIMIT) -> str:
    text = prompt.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
