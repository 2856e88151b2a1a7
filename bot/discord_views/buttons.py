"""The buttons on job messages: Cancel on a status message; Reroll, Remix and Delete on a result.

Each button carries its job id in its custom_id (`wirobot:cancel:12`) and is a DynamicItem, so
it works for any message, also one sent before the bot restarted: the state is read from the
engine and SQLite when it is pressed, never from the message.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Any, cast

import discord
from discord import ui

from bot.discord_views.launch import requester_of, start_job
from bot.jobs.engine import CancelOutcome, JobRequest
from bot.jobs.job import Job, JobState

if TYPE_CHECKING:
    from bot.discord_bot import WiroBot

_Button = ui.Button[ui.View]


def status_view(job_id: int) -> ui.View:
    view = ui.View(timeout=None)
    view.add_item(JobButton("cancel", job_id))
    return view


def result_view(job_id: int) -> ui.View:
    view = ui.View(timeout=None)
    for action in ("reroll", "remix", "delete"):
        view.add_item(JobButton(action, job_id))
    return view


def all_buttons() -> tuple[type[ui.DynamicItem[Any]], ...]:
    return (JobButton,)


#: How each button looks: label, style, emoji.
_LOOKS: dict[str, tuple[str, discord.ButtonStyle, str | None]] = {
    "cancel": ("Cancel", discord.ButtonStyle.danger, None),
    "reroll": ("Reroll", discord.ButtonStyle.primary, "\N{GAME DIE}"),
    "remix": ("Remix", discord.ButtonStyle.secondary, "\N{ARTIST PALETTE}"),
    "delete": ("Delete", discord.ButtonStyle.danger, "\N{WASTEBASKET}"),
}


class JobButton(
    ui.DynamicItem[_Button], template=r"wirobot:(?P<action>cancel|reroll|remix|delete):(?P<job>\d+)"
):
    """One of the four job buttons; what it does is in its custom_id with the job id."""

    def __init__(self, action: str, job_id: int) -> None:
        label, style, emoji = _LOOKS[action]
        super().__init__(
            ui.Button(label=label, style=style, emoji=emoji, custom_id=f"wirobot:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        job = await _bot(interaction).runtime.engine.get(self.job_id)
        if job is None:
            if self.action == "delete":  # the message outlived its job: still let it go
                await _delete(interaction)
            else:
                await _say(interaction, "This job no longer exists.")
            return
        if self.action == "cancel":
            await _cancel(interaction, job)
        elif self.action == "reroll":
            await start_job(interaction, again(job, interaction, prompt=job.prompt, seed=None))
        elif self.action == "remix":
            await interaction.response.send_modal(RemixModal(job))
        elif not _may_manage(interaction, job):
            await _say(
                interaction,
                f"Only <@{job.user_id}>, who asked for these images, or members with Manage "
                "Messages can delete them.",
            )
        else:
            await _delete(interaction)


async def _cancel(interaction: discord.Interaction[Any], job: Job) -> None:
    if not _may_manage(interaction, job):
        await _say(
            interaction,
            f"Only <@{job.user_id}>, who asked for this job, or members with Manage Messages "
            "can cancel it.",
        )
        return
    await interaction.response.defer(ephemeral=True, thinking=True)
    result = await _bot(interaction).runtime.engine.cancel(job.id)
    await interaction.followup.send(_cancel_words(result.outcome, result.job, result.detail))


async def _delete(interaction: discord.Interaction[Any]) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    if interaction.message is not None:
        with contextlib.suppress(discord.NotFound):  # already gone
            await interaction.message.delete()
    await interaction.followup.send("Deleted.")


class RemixModal(ui.Modal):
    """The prompt to edit; the seed and every other input stay the same."""

    def __init__(self, job: Job) -> None:
        super().__init__(title="Remix", custom_id=f"wirobot:remix-modal:{job.id}")
        self.job = job
        self.prompt: ui.TextInput[RemixModal] = ui.TextInput(
            label="Prompt",
            style=discord.TextStyle.paragraph,
            default=job.prompt[:2000],
            max_length=2000,
            custom_id="prompt",
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        job = self.job
        await start_job(
            interaction, again(job, interaction, prompt=self.prompt.value, seed=job.seed)
        )


def again(
    job: Job, interaction: discord.Interaction[Any], *, prompt: str, seed: int | None
) -> JobRequest:
    """A request for `job`'s model and inputs, by whoever pressed, with this prompt and seed
    (None: a new random seed)."""
    options: dict[str, object] = {
        name: value for name, value in job.inputs.items() if name not in ("prompt", "seed")
    }
    options["seed"] = seed
    return JobRequest(
        prompt=prompt, requester=requester_of(interaction), model=job.model, options=options
    )


def _cancel_words(outcome: CancelOutcome, job: Job | None, detail: str) -> str:
    if outcome is CancelOutcome.DROPPED:
        return "Cancelled. It had not reached Wiro yet, so nothing was charged."
    if outcome is CancelOutcome.CANCELLED:
        return "Cancelled. Wiro had not started it yet."
    if outcome is CancelOutcome.KILLED:
        return "Stopped. Wiro was already generating; it has been stopped."
    if outcome is CancelOutcome.PENDING:
        return "Cancelling: it is being sent to Wiro and will be stopped as soon as Wiro answers."
    if outcome is CancelOutcome.NOT_FOUND:
        return "This job no longer exists."
    if outcome is CancelOutcome.FAILED:
        reason = f" ({detail})" if detail else ""
        return f"Wiro did not accept the cancel{reason}; the job goes on. Try again in a moment."
    if job is not None and job.status is JobState.CANCELLED:
        return "This job is already cancelled."
    state = {
        JobState.SUCCEEDED: "its images are done",
        JobState.FAILED: "it failed",
        JobState.TIMED_OUT: "it timed out",
    }.get(job.status if job else JobState.SUCCEEDED, "it has finished")
    return f"Too late to cancel: {state}."


def _may_manage(interaction: discord.Interaction[Any], job: Job) -> bool:
    return job.user_id == interaction.user.id or interaction.permissions.manage_messages


async def _say(interaction: discord.Interaction[Any], text: str) -> None:
    await interaction.response.send_message(text, ephemeral=True)


def _bot(interaction: discord.Interaction[Any]) -> WiroBot:
    return cast("WiroBot", interaction.client)
