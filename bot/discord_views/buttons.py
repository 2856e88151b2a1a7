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

from bot.discord_views.errors import report_failure, tell
from bot.discord_views.fit import fit
from bot.discord_views.launch import PROMPT_LENGTH, requester_of, start_job
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
        try:
            await self._press(interaction)
        except Exception as exc:  # discord.py would only log it: the member must hear too
            await report_failure(interaction, exc, f"the {_LOOKS[self.action][0]} button")

    async def _press(self, interaction: discord.Interaction[Any]) -> None:
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
            await send_remix_form(interaction, job)
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


#: The Remix form's custom_id carries its job: `wirobot:remix-form:12`.
_REMIX_FORM = re.compile(r"wirobot:remix-(?:form|modal):(?P<job>\d+)")  # modal: before 0.2
_PROMPT_INPUT = "prompt"


class RemixForm(ui.Modal):
    """The prompt to edit; the seed and every other input stay the same.

    discord.py keeps a sent form in memory under its custom_id alone: a second member's form
    on the same result would replace the first's, and a restart forgets both. So the form is
    dropped from memory as soon as it is sent, and every submit is handled from its custom_id
    and the job in the database (`remix_submitted`), like the buttons.
    """

    def __init__(self, job: Job) -> None:
        super().__init__(title="Remix", custom_id=f"wirobot:remix-form:{job.id}", timeout=None)
        self.add_item(
            ui.TextInput(
                label="Prompt",
                style=discord.TextStyle.paragraph,
                default=fit(job.prompt, PROMPT_LENGTH),
                max_length=PROMPT_LENGTH,
                custom_id=_PROMPT_INPUT,
            )
        )


async def send_remix_form(interaction: discord.Interaction[Any], job: Job) -> None:
    form = RemixForm(job)
    await interaction.response.send_modal(form)
    form.stop()  # out of discord.py's memory: remix_submitted answers every submit


async def remix_submitted(interaction: discord.Interaction[Any]) -> None:
    """Listener for every interaction: starts the job of a submitted Remix form."""
    if interaction.type is not discord.InteractionType.modal_submit:
        return
    data = cast("dict[str, Any]", interaction.data or {})
    match = _REMIX_FORM.fullmatch(str(data.get("custom_id", "")))
    if match is None:
        return
    try:
        job = await _bot(interaction).runtime.engine.get(int(match["job"]))
        if job is None:
            await tell(interaction, "This job no longer exists, so it cannot be remixed.")
            return
        prompt = _text_input(data.get("components", []), _PROMPT_INPUT)
        if prompt is None:
            await tell(interaction, "The form came back without a prompt; open Remix again.")
            return
        await start_job(interaction, again(job, interaction, prompt=prompt, seed=job.seed))
    except Exception as exc:
        await report_failure(interaction, exc, "the Remix form")


def _text_input(components: list[Any], custom_id: str) -> str | None:
    """The value of the text input `custom_id` in a submitted form (rows or labels)."""
    for component in components:
        if not isinstance(component, dict):
            continue
        if component.get("custom_id") == custom_id and "value" in component:
            return str(component["value"])
        inner = [*component.get("components", []), component.get("component")]
        found = _text_input([c for c in inner if c], custom_id)
        if found is not None:
            return found
    return None


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
    if outcome is CancelOutcome.ASKED:
        return "Cancelling: the bot process running it is stopping it at Wiro now."
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
    await tell(interaction, text)


def _bot(interaction: discord.Interaction[Any]) -> WiroBot:
    return cast("WiroBot", interaction.client)
