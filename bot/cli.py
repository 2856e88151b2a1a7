"""The `wirobot` command: start the bot, or run one job, list history, models, check settings.

Exit codes: 0 success, 1 the job failed or was cancelled (or a check failed), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO

from bot.catalog.catalog import Catalog
from bot.catalog.loader import spec_from_tool_detail
from bot.catalog.validation import InvalidInput, describe_allowed
from bot.jobs.engine import JobEngine, JobRefused, JobRequest
from bot.jobs.events import EventKind, Subscription
from bot.jobs.job import Job, JobState, Requester
from bot.runtime import build_client, open_runtime
from bot.settings import ConfigError, Settings, load_settings
from bot.store import HistoryQuery, Store
from bot.wiro.exceptions import AuthError, NotFound, WiroError
from bot.wiro.types import ToolDetail

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("wirobot")

#: CLI flag -> the catalog's option name.
_IMAGINE_OPTIONS = {
    "negative_prompt": str,
    "samples": int,
    "steps": int,
    "guidance": float,
    "seed": int,
    "width": int,
    "height": int,
    "scheduler": str,
    "clip_skip": int,
    "refiner": str,
    "high_noise_frac": float,
    "refiner_steps": int,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wirobot",
        description="Wiro's text-to-image models in Discord. With no command, starts the bot.",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="TOML settings file (default: $WIROBOT_CONFIG, else ./config.toml when present)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="start the Discord bot (the default)")

    imagine = commands.add_parser("imagine", help="generate images with one job, from here")
    imagine.add_argument("prompt")
    imagine.add_argument("--model", metavar="SLUG", help="owner/project (default: configured)")
    for option, kind in _IMAGINE_OPTIONS.items():
        flag = "--" + option.replace("_", "-")
        imagine.add_argument(flag, dest=option, metavar=option.upper(), help=f"{kind.__name__}")
    imagine.add_argument("--out", metavar="DIR", default="out", help="where to write the images")

    history = commands.add_parser("history", help="recent jobs")
    history.add_argument("--limit", type=_positive_int, default=20, metavar="N")

    commands.add_parser("models", help="the models and their inputs")
    commands.add_parser("check", help="check settings, Wiro credentials and the Discord token")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `wirobot models | head`
        sys.stderr.close()
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"wirobot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=settings.logging.level,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command = args.command or "run"
    try:
        if command == "run":
            from bot.discord_bot import run_bot

            return run_bot(settings)
        if command == "imagine":
            return asyncio.run(imagine(settings, args))
        if command == "history":
            return asyncio.run(history(settings, args.limit))
        if command == "models":
            return asyncio.run(models(settings))
        if command == "check":
            return asyncio.run(check(settings))
    except ConfigError as exc:
        print(f"wirobot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    raise AssertionError(command)  # pragma: no cover - argparse allows only the above


# -- imagine -------------------------------------------------------------------------------


async def imagine(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    options: dict[str, object] = {
        name: getattr(args, name) for name in _IMAGINE_OPTIONS if getattr(args, name) is not None
    }
    request = JobRequest(
        prompt=args.prompt, requester=Requester(source="cli"), model=args.model, options=options
    )
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        async with open_runtime(settings) as runtime:
            engine = runtime.engine
            with engine.subscribe() as events:
                try:
                    job = await engine.submit(request)
                except InvalidInput as exc:
                    print(f"wirobot: {exc}", file=sys.stderr)
                    return EXIT_USAGE
                except JobRefused as exc:
                    print(f"wirobot: {exc}", file=sys.stderr)
                    return EXIT_FAILED
                started = time.monotonic()
                _say(out, started, f"job {job.id}: {job.model}, seed {job.seed}")
                final = await _follow(engine, events, job, started, interrupted, out)
            return _report(final, Path(args.out), started, out)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


async def _follow(
    engine: JobEngine,
    events: Subscription,
    job: Job,
    started: float,
    interrupted: asyncio.Event,
    out: TextIO,
) -> Job:
    last = ""
    interrupt = asyncio.ensure_future(interrupted.wait())
    try:
        while True:
            next_event = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait(
                {next_event, interrupt}, return_when=asyncio.FIRST_COMPLETED
            )
            if interrupt in done:
                next_event.cancel()
                _say(out, started, "interrupted: cancelling the job")
                result = await engine.cancel(job.id)
                _say(out, started, f"cancel: {result.outcome.value}")
                interrupt = asyncio.ensure_future(asyncio.Event().wait())  # ignore further ^C
                if result.job is not None and result.job.status.is_final:
                    return result.job
                continue
            event = next_event.result()
            if event.job.id != job.id:
                continue
            line = _describe(event.job)
            if line != last:
                _say(out, started, line)
                last = line
            if event.kind is EventKind.FINISHED:
                return event.job
    finally:
        interrupt.cancel()


def _describe(job: Job) -> str:
    match job.status:
        case JobState.CREATED | JobState.WAITING:
            return f"waiting: {job.waiting_for}" if job.waiting_for else "waiting for a free slot"
        case JobState.SUBMITTED:
            return "sending to Wiro"
        case JobState.QUEUED:
            return f"queued at Wiro (task {job.task_id})"
        case JobState.RUNNING:
            return "generating"
        case JobState.SUCCEEDED:
            cost = f", cost ${job.cost:.4f}" if job.cost else ""
            return f"done in {job.elapsed_seconds or 0:.1f}s{cost}"
        case JobState.FAILED:
            return f"failed: {job.error}"
        case JobState.CANCELLED:
            return "cancelled"
        case JobState.TIMED_OUT:
            return f"timed out: {job.error}"


def _report(job: Job, out_dir: Path, started: float, out: TextIO) -> int:
    if job.status is not JobState.SUCCEEDED:
        return EXIT_FAILED
    out_dir.mkdir(parents=True, exist_ok=True)
    for output in job.outputs:
        if output.path is None:
            continue
        target = out_dir / f"{job.id}-{output.name}"
        shutil.copyfile(output.path, target)
        _say(out, started, f"wrote {target}")
    return EXIT_OK


def _say(out: TextIO, started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {text}", file=out, flush=True)


# -- history, models, check ----------------------------------------------------------------


async def history(settings: Settings, limit: int, out: TextIO = sys.stdout) -> int:
    async with await Store.open(settings.database.path) as store:
        jobs = await store.jobs.history(HistoryQuery(limit=limit))
    if not jobs:
        print("No jobs yet.", file=out)
        return EXIT_OK
    for job in jobs:
        when = datetime.fromtimestamp(job.created_at).strftime("%Y-%m-%d %H:%M")
        prompt = job.prompt if len(job.prompt) <= 60 else job.prompt[:59] + "…"
        where = "cli" if job.guild_id is None else f"guild {job.guild_id}"
        print(
            f"#{job.id:<5} {when}  {job.status.value:<9} {job.model:<30} {where:<24} {prompt}",
            file=out,
        )
    return EXIT_OK


async def models(settings: Settings, out: TextIO = sys.stdout) -> int:
    catalog = Catalog.from_seeds()
    if settings.models.extra:
        async with await Store.open(settings.database.path) as store:
            for slug in settings.models.extra:
                cached = await store.tools.get_tool_detail(slug)
                try:
                    if cached is None:
                        raise ValueError("not read from Wiro yet; the bot reads it at start")
                    catalog.add(spec_from_tool_detail(ToolDetail.model_validate(cached)))
                except ValueError as exc:  # pydantic's and the loader's errors included
                    print(f"({slug}: {exc})", file=out)
    for model in catalog.all():
        marks = " [default]" if model.slug == settings.models.default else ""
        marks += " [NSFW-capable]" if model.nsfw else ""
        print(f"{model.slug}{marks}\n  {model.display_name}: {model.description}", file=out)
        if model.trigger_words:
            print(f"  trigger words: {', '.join(model.trigger_words)}", file=out)
        for spec in model.inputs:
            default = (
                ""
                if spec.default in (None, "") or spec.option == "prompt"
                else (f" (default {spec.default})")
            )
            print(
                f"    --{spec.option.replace('_', '-'):<17} {describe_allowed(spec)}{default}",
                file=out,
            )
    return EXIT_OK


async def check(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Settings valid, Wiro credentials accepted, Discord token accepted (when set)."""
    import aiohttp

    ok = True
    print("settings: valid", file=out)
    async with aiohttp.ClientSession() as session:
        client = build_client(settings, session)
        try:
            await client.tool_detail(settings.models.default)
            print("wiro: credentials accepted", file=out)
        except AuthError as exc:
            print(f"wiro: credentials refused: {exc}", file=out)
            ok = False
        except NotFound:
            print("wiro: credentials accepted (the default model was not found)", file=out)
        except WiroError as exc:
            print(f"wiro: could not check: {exc}", file=out)
            ok = False
    if settings.discord.token is None:
        print("discord: no token set (needed to start the bot)", file=out)
    else:
        ok = await _check_discord(settings.discord.token.get_secret_value(), out) and ok
    return EXIT_OK if ok else EXIT_FAILED


async def _check_discord(token: str, out: TextIO) -> bool:
    import discord

    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token)
        user = client.user
        print(f"discord: token accepted ({user})", file=out)
        return True
    except discord.LoginFailure:
        print("discord: token refused", file=out)
        return False
    except (discord.HTTPException, OSError) as exc:
        print(f"discord: could not check ({type(exc).__name__})", file=out)
        return False
    finally:
        await client.close()
