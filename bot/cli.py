"""The `wirobot` command: start the bot, or run one job, list history, models, check settings,
print the invite link.

Exit codes: 0 success, 1 the job failed or was cancelled (or a check failed), 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from bot import progress as progress_text
from bot.catalog.catalog import Catalog
from bot.catalog.loader import spec_from_tool_detail
from bot.catalog.pricing import UNKNOWN, PriceBook
from bot.catalog.validation import InvalidInput, describe_allowed
from bot.event_loop import use_fast_loop
from bot.jobs.engine import JobEngine, JobRefused, JobRequest
from bot.jobs.events import EventKind, Subscription
from bot.jobs.job import Job, JobState, Requester
from bot.jobs.outputs import output_file_name
from bot.jobs.usage import PERIODS, period_start, period_words
from bot.logs import setup_logging
from bot.money import usd
from bot.runtime import build_client, check_storage, open_runtime, open_store
from bot.settings import ConfigError, Settings, load_settings
from bot.store import HistoryQuery
from bot.wiro.exceptions import AuthError, NotFound, WiroError
from bot.wiro.types import TaskProgress, ToolDetail

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("wirobot")

#: CLI flag -> (the type it parses as, what it means). The allowed range depends on the model:
#: validation names it when a value is refused, and `wirobot models` lists them all.
_IMAGINE_OPTIONS: dict[str, tuple[type, str]] = {
    "negative_prompt": (str, "what to keep out of the image"),
    "samples": (int, "how many images, a whole number (1 to 4 for the shipped models)"),
    "steps": (int, "denoising steps, a whole number (1 to 150): more is slower, often finer"),
    "guidance": (float, "how closely to follow the prompt, a number (0 to 30)"),
    "seed": (
        int,
        "0 to 4294967295; the same seed and inputs give the same image (default: random)",
    ),
    "width": (int, "image width in pixels, a multiple of 8 (256 to 2048)"),
    "height": (int, "image height in pixels, a multiple of 8 (256 to 2048)"),
    "scheduler": (str, "sampling scheduler, by name (the model's choices: wirobot models)"),
    "clip_skip": (int, "skip the last CLIP layers, a whole number (1 to 12; higher is looser)"),
    "refiner": (str, "run the SDXL refiner after the base model: YES or NO"),
    "high_noise_frac": (
        float,
        "share of the steps the base model does before the refiner (0 to 1)",
    ),
    "refiner_steps": (int, "steps the refiner runs, a whole number (1 to 150)"),
}
_MODEL_NOTE = (
    "Which options a model takes, their ranges, choices and defaults: `wirobot models`. "
    "An option the model does not take is refused; one not given takes the model's default."
)


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
    commands.add_parser(
        "run", help="start the Discord bot (the default)", description="Start the Discord bot."
    )

    imagine = commands.add_parser(
        "imagine",
        help="generate images with one job, from here",
        description="Run one job through the same engine as the bot, show its progress, "
        "and write the images to --out. Ctrl-C cancels the task at Wiro.",
        epilog=_MODEL_NOTE,
    )
    imagine.add_argument("prompt", help="what to draw (in quotes)")
    imagine.add_argument(
        "--model",
        metavar="SLUG",
        help="the model, owner/project (default: models.default; the list: wirobot models)",
    )
    for option, (kind, words) in _IMAGINE_OPTIONS.items():
        flag = "--" + option.replace("_", "-")
        metavar = {str: "TEXT", int: "N", float: "X"}[kind]
        imagine.add_argument(flag, dest=option, metavar=metavar, help=words)
    imagine.add_argument(
        "--out",
        metavar="DIR",
        default="out",
        help="folder to write the images to, created if needed; checked before the job runs "
        "(default: ./out)",
    )

    history = commands.add_parser(
        "history", help="recent jobs", description="The most recent jobs, newest first."
    )
    history.add_argument(
        "--limit", type=_positive_int, default=20, metavar="N", help="how many (default: 20)"
    )

    usage = commands.add_parser(
        "usage",
        help="what the jobs cost, by member, model and day",
        description="Spend and jobs by member, by model and by day, from the costs Wiro "
        "reported (exact, in dollars). Reads the database only; nothing is sent to Wiro.",
    )
    usage.add_argument(
        "--guild", type=_positive_int, metavar="ID", help="one server's jobs (default: every job)"
    )
    usage.add_argument(
        "--period", choices=PERIODS, default="month", help="today, week, month (default) or all"
    )

    commands.add_parser(
        "models",
        help="the models and their inputs",
        description="Every model, with each option it takes: the allowed values and default.",
    )
    invite = commands.add_parser(
        "invite",
        help="print the link that adds the bot to a server",
        description="Print the invite link for the bot of discord.token, with the scopes "
        "(bot, applications.commands) and the permissions it needs: View Channel, Send "
        "Messages (also in threads), Embed Links, Attach Files. Nothing is sent to Discord.",
    )
    invite.add_argument(
        "--application-id",
        type=_positive_int,
        metavar="ID",
        help="the application's id (Developer Portal -> General Information), when the "
        "token is not at hand",
    )
    migrate = commands.add_parser(
        "migrate",
        help="bring the database up to date, then exit",
        description="Apply the database's pending migrations (SQLite at database.path, or "
        "PostgreSQL at database.url) and exit. With --from-sqlite, first copy an existing "
        "SQLite database into the empty PostgreSQL one of database.url, ids kept, all or "
        "nothing.",
    )
    migrate.add_argument(
        "--from-sqlite",
        metavar="PATH",
        help="the SQLite database file to copy into PostgreSQL (database.url must be set)",
    )
    commands.add_parser(
        "check",
        help="check settings, Wiro credentials and the Discord token",
        description="Check the settings, the database path, that Wiro accepts the key (and "
        "secret), and that Discord accepts the bot token. Run it before the first start.",
    )
    return parser


def _positive_int(text: str) -> int:
    if not re.fullmatch(r"\s*\+?\d{1,20}\s*", text):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {_shown(text)}")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    if value >= 2**63:  # SQLite's and Discord's ids stop there
        raise argparse.ArgumentTypeError(f"must be less than {2**63}")
    return value


def _shown(text: str, limit: int = 40) -> str:
    """A value a person typed, quoted and cut short for an error line."""
    text = _printable(text)
    return "'" + (text if len(text) <= limit else text[: limit - 1] + "…") + "'"


def _printable(text: str) -> str:
    """Bytes that were not UTF-8 (kept by Python as surrogates) shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _not_text(args: argparse.Namespace) -> str | None:
    """Why a typed value is no text, or None: bytes that are not UTF-8, control characters."""
    for name, value in vars(args).items():
        if not isinstance(value, str):
            continue
        shown = "the prompt" if name == "prompt" else "--" + name.replace("_", "-")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return (
                f"{shown} is not valid UTF-8 text ({_shown(value)}); check the terminal's "
                "encoding (e.g. LANG=C.UTF-8)"
            )
        if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
            return f"{shown} holds control characters ({_shown(value)}); type plain text"
    return None


def entry() -> int:
    """The `wirobot` command and `python -m bot`: `main` on the fastest event loop at hand
    (set for the process, so only here: tests call `main` in their own loop)."""
    use_fast_loop()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `wirobot models | head`
        sys.stderr.close()
        return EXIT_OK


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    wrong = _not_text(args)
    if wrong:
        parser.exit(EXIT_USAGE, f"wirobot: {wrong}\n")
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"wirobot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = args.command or "run"
    setup_logging(
        settings.logging, quiet=command in ("history", "usage", "models", "check", "migrate")
    )
    try:
        if command == "run":
            from bot.discord_bot import run_bot

            return run_bot(settings)
        if command == "imagine":
            return asyncio.run(imagine(settings, args))
        if command == "history":
            return asyncio.run(history(settings, args.limit))
        if command == "usage":
            return asyncio.run(usage(settings, args.guild, args.period))
        if command == "models":
            return asyncio.run(models(settings))
        if command == "check":
            return asyncio.run(check(settings))
        if command == "migrate":
            return asyncio.run(migrate(settings, args.from_sqlite))
        if command == "invite":
            return invite(settings, args.application_id)
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
    out_dir = Path(args.out)
    unwritable = _unwritable(out_dir)
    if unwritable:  # found now, not after the job has run and been paid for
        print(f"wirobot: --out {out_dir}: {unwritable}", file=sys.stderr)
        return EXIT_USAGE
    display = _Display(out)
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
                price = (
                    f"about {usd(job.estimate)}" if job.estimate is not None else "price unknown"
                )
                display.say(f"job {job.id}: {job.model}, seed {job.seed}, {price}")
                final = await _follow(engine, events, job, interrupted, display)
            return _report(final, out_dir, display)
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


def _unwritable(folder: Path) -> str | None:
    """Why images cannot be written to `folder` (created if missing), or None."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "that is a file, not a folder"
    except OSError as exc:
        return f"cannot create it ({exc.strerror or type(exc).__name__}); pick another folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return "this user cannot write there; pick another folder"
    return None


class _Display:
    """The job's status lines on stdout. On a terminal, progress is a live bar redrawn in
    place; otherwise (a pipe, a file) each change is a plain line: `[  6.1s] generating 60%`.
    Log lines go to stderr, so the two never mix within one stream."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        isatty = getattr(out, "isatty", None)
        self.live = bool(isatty and isatty())
        self._bar_shown = False
        self._last = ""

    def say(self, text: str) -> None:
        self._clear_bar()
        print(f"{self._clock()} {text}", file=self.out, flush=True)

    def progress(self, progress: TaskProgress) -> None:
        if self.live:
            self.out.write(f"\r\x1b[K{self._clock()} generating {progress_text.describe(progress)}")
            self.out.flush()
            self._bar_shown = True
        else:
            self.state(f"generating {progress_text.plain(progress)}")

    def state(self, text: str) -> None:
        """Say `text` unless it was the last thing said."""
        if text != self._last:
            self.say(text)
            self._last = text

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.out.write("\r\x1b[K")
            self._bar_shown = False

    def _clock(self) -> str:
        return f"[{time.monotonic() - self.started:6.1f}s]"


async def _follow(
    engine: JobEngine,
    events: Subscription,
    job: Job,
    interrupted: asyncio.Event,
    display: _Display,
) -> Job:
    interrupt = asyncio.ensure_future(interrupted.wait())
    try:
        while True:
            next_event = asyncio.ensure_future(events.get())
            done, _ = await asyncio.wait(
                {next_event, interrupt}, return_when=asyncio.FIRST_COMPLETED
            )
            if interrupt in done:
                next_event.cancel()
                display.say("interrupted: cancelling the job")
                result = await engine.cancel(job.id)
                display.say(f"cancel: {result.outcome.value}")
                interrupt = asyncio.ensure_future(asyncio.Event().wait())  # ignore further ^C
                if result.job is not None and result.job.status.is_final:
                    return result.job
                continue
            event = next_event.result()
            if event.job.id != job.id:
                continue
            current = event.job
            if current.status is JobState.RUNNING and current.progress is not None:
                display.progress(current.progress)
            else:
                display.state(_describe(current))
            if event.kind is EventKind.FINISHED:
                return current
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
            cost = f", cost {usd(job.cost)}" if job.cost is not None else ""
            return f"done in {job.elapsed_seconds or 0:.1f}s{cost}"
        case JobState.FAILED:
            return f"failed: {_last_line(job.error)}"
        case JobState.CANCELLED:
            return "cancelled"
        case JobState.TIMED_OUT:
            return f"timed out: {_last_line(job.error)}"


def _last_line(text: str | None) -> str:
    """A status stays one line: a model's error output ends with its reason."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"


def _report(job: Job, out_dir: Path, display: _Display) -> int:
    if job.status is not JobState.SUCCEEDED:
        return EXIT_FAILED
    for index, output in enumerate(job.outputs, 1):
        if output.path is None:
            continue
        target = out_dir / output_file_name(job, index, Path(output.path).suffix)
        try:
            shutil.copyfile(output.path, target)
        except OSError as exc:
            display.say(
                f"could not write {target}: {exc.strerror}; the image stays in {output.path}"
            )
            continue
        display.say(f"wrote {target}")
    return EXIT_OK


# -- history, models, check ----------------------------------------------------------------


async def history(settings: Settings, limit: int, out: TextIO = sys.stdout) -> int:
    if not _database_exists(settings):  # reading creates nothing
        print(f"No jobs yet (no database at {settings.database.path}).", file=out)
        return EXIT_OK
    async with await open_store(settings) as store:
        jobs = await store.jobs.history(HistoryQuery(limit=limit))
    if not jobs:
        print("No jobs yet.", file=out)
        return EXIT_OK
    for job in jobs:
        when = datetime.fromtimestamp(job.created_at).strftime("%Y-%m-%d %H:%M")
        prompt = job.prompt if len(job.prompt) <= 60 else job.prompt[:59] + "…"
        where = "cli" if job.guild_id is None else f"guild {job.guild_id}"
        cost = usd(job.cost) if job.cost is not None else "-"
        print(
            f"#{job.id:<5} {when}  {job.status.value:<9} {cost:>8} {job.model:<30} {where:<24}"
            f" {prompt}",
            file=out,
        )
    return EXIT_OK


async def models(settings: Settings, out: TextIO = sys.stdout) -> int:
    catalog = Catalog.from_seeds()
    prices: PriceBook | None = None
    if not _database_exists(settings):  # reading creates nothing
        for slug in settings.models.extra:
            print(f"({slug}: not read from Wiro yet; the bot reads it at start)", file=out)
    else:
        async with await open_store(settings) as store:
            for slug in settings.models.extra:
                cached = await store.tools.get_tool_detail(slug)
                try:
                    if cached is None:
                        raise ValueError("not read from Wiro yet; the bot reads it at start")
                    catalog.add(spec_from_tool_detail(ToolDetail.model_validate(cached)))
                except ValueError as exc:  # pydantic's and the loader's errors included
                    print(f"({slug}: {exc})", file=out)
            prices = PriceBook(catalog, store.spend, None)
            await prices.load()
    for model in catalog.all():
        marks = " [default]" if model.slug == settings.models.default else ""
        marks += " [NSFW-capable]" if model.nsfw else ""
        print(f"{model.slug}{marks}\n  {model.display_name}: {model.description}", file=out)
        price = prices.list_price(model) if prices is not None else UNKNOWN
        print(
            f"  price: {price.words} a run with its defaults"
            + ("" if price.amount is not None else " (the bot reads prices from Wiro at start)"),
            file=out,
        )
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


async def usage(
    settings: Settings, guild_id: int | None, period: str, out: TextIO = sys.stdout
) -> int:
    """Spend and jobs by member, model and day (UTC), for one server or every job."""
    if not _database_exists(settings):  # reading creates nothing
        print(f"No jobs yet (no database at {settings.database.path}).", file=out)
        return EXIT_OK
    now = time.time()
    async with await open_store(settings) as store:
        summary = await store.spend.usage(guild_id=guild_id, since=period_start(period, now))
    whose = f"guild {guild_id}" if guild_id is not None else "all jobs"
    print(f"{whose}, {period_words(period, now)}: {usd(summary.total)}", end="", file=out)
    print(f" for {summary.jobs} job{'' if summary.jobs == 1 else 's'}", file=out)
    if not summary.days:
        return EXIT_OK
    sections: list[tuple[str, list[tuple[Any, Decimal, int]]]] = [
        ("by member", list(summary.by_member())),
        ("by model", list(summary.by_model())),
        ("by day (UTC)", list(summary.by_day())),
    ]
    for title, lines in sections:
        print(f"\n{title}:", file=out)
        for value, spent, jobs in lines:
            name = value if value is not None else "command line"
            noun = "job" if jobs == 1 else "jobs"
            print(f"  {name!s:<32} {usd(spent):>10}  {jobs:>5} {noun}", file=out)
    return EXIT_OK


async def check(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Settings valid, Wiro credentials accepted, Discord token accepted (when set)."""
    import aiohttp

    ok = True
    print("settings: valid", file=out)
    try:
        check_storage(settings, create=False)
        where = settings.database.shown_url or settings.database.path
        print(f"database: {where} can be used", file=out)
    except ConfigError as exc:
        print(f"database: {exc}", file=out)
        ok = False
    async with aiohttp.ClientSession() as session:
        try:
            client = build_client(settings, session)
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
        except ConfigError as exc:  # no key
            print(f"wiro: {exc}", file=out)
            ok = False
    if settings.discord.token is None:
        print("discord: no token set (needed to start the bot)", file=out)
    else:
        ok = await _check_discord(settings.discord.token.get_secret_value(), out) and ok
    return EXIT_OK if ok else EXIT_FAILED


def invite(settings: Settings, application_id: int | None, out: TextIO = sys.stdout) -> int:
    from bot.discord_bot import application_id_from_token, invite_url

    if application_id is None:
        token = settings.require_discord_token().get_secret_value()
        application_id = application_id_from_token(token)
        if application_id is None:
            print(
                "wirobot: discord.token does not look like a bot token (three parts joined "
                "by dots); copy it again from the Developer Portal (your application -> Bot "
                "-> Reset Token), or give --application-id",
                file=sys.stderr,
            )
            return EXIT_USAGE
    print(invite_url(application_id), file=out)
    return EXIT_OK


# -- migrate -------------------------------------------------------------------------------


async def migrate(settings: Settings, from_sqlite: str | None, out: TextIO = sys.stdout) -> int:
    """Apply pending migrations and exit; with `from_sqlite`, copy that file in first."""
    from bot.store.transfer import TransferError

    shown = settings.database.shown_url or str(settings.database.path)
    if from_sqlite is not None and settings.database.url is None:
        print(
            "wirobot: --from-sqlite copies into PostgreSQL: set database.url "
            "(WIROBOT_DATABASE__URL) to the new, empty database first",
            file=sys.stderr,
        )
        return EXIT_USAGE
    async with await open_store(settings) as store:
        if from_sqlite is not None:
            source = Path(from_sqlite)
            try:
                copied = await store.copy_from_sqlite(source)
            except TransferError as exc:
                print(
                    f"wirobot: --from-sqlite {source}: {exc}; nothing was copied", file=sys.stderr
                )
                return EXIT_USAGE
            for part in copied:
                print(f"copied {part.rows} rows of {part.table}", file=out)
        version = await store.version()
    print(f"database {shown}: up to date (version {version})", file=out)
    return EXIT_OK


def _database_exists(settings: Settings) -> bool:
    if settings.database.url is not None:
        return True  # a server's database: reading it creates nothing there
    path = settings.database.path
    return str(path) == ":memory:" or path.exists()


async def _check_discord(token: str, out: TextIO) -> bool:
    import discord

    discord.VoiceClient.warn_nacl = False  # the bot never joins voice: no warnings about it
    discord.VoiceClient.warn_dave = False
    # Only logs in (no gateway): the intent is the bot's own, to keep discord.py from warning.
    client = discord.Client(intents=discord.Intents(guilds=True))
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
