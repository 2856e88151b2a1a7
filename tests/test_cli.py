"""The `wirobot` command, run as a real process against the Wiro stand-in."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.jobs.job import JobState
from bot.store import HistoryQuery, Store
from tests.wiro_standin import WiroStandIn

MODEL = "ArsMachina/Ars-Niji-Style-v1"


@dataclass
class Result:
    code: int
    out: str
    err: str


def process_env(wiro: WiroStandIn, database_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a `wirobot` process on the Wiro stand-in: this one's without any
    WIROBOT_ variable, then fast polling, the test model and `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIROBOT_")}
    env.update(
        WIROBOT_WIRO__API_KEY=wiro.api_key,
        WIROBOT_WIRO__API_SECRET=wiro.api_secret or "",
        WIROBOT_WIRO__BASE_URL=wiro.base_url,
        WIROBOT_WIRO__SOCKET_URL=wiro.socket_url,
        WIROBOT_DATABASE__PATH=str(database_path),
        WIROBOT_JOBS__POLL_MIN_INTERVAL="0.02",
        WIROBOT_JOBS__POLL_MAX_INTERVAL="0.1",
        WIROBOT_MODELS__DEFAULT=MODEL,
    )
    env.update(settings)
    return env


@pytest.fixture
def cli_env(tmp_path: Path, wiro: WiroStandIn) -> dict[str, str]:
    return process_env(wiro, tmp_path / "db" / "wirobot.db")


async def start(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def wirobot(env: dict[str, str], cwd: Path, *args: str) -> Result:
    process = await start(env, cwd, *args)
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def test_imagine_writes_the_images_and_records_the_job(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    result = await wirobot(
        cli_env,
        tmp_path,
        "imagine",
        "a paper boat",
        "--samples",
        "2",
        "--seed",
        "5",
        "--out",
        "pictures",
    )
    assert result.code == 0, result.err
    assert "queued at Wiro" in result.out
    assert "done in" in result.out
    written = sorted((tmp_path / "pictures").iterdir())
    assert len(written) == 2 and all(p.read_bytes().startswith(b"\x89PNG") for p in written)
    assert wiro.runs[0].body["prompt"] == "a paper boat"
    async with await Store.open(tmp_path / "db" / "wirobot.db") as store:
        (job,) = await store.jobs.history(HistoryQuery())
    assert job.status is JobState.SUCCEEDED and job.seed == 5 and job.requester.source == "cli"

    listed = await wirobot(cli_env, tmp_path, "history", "--limit", "5")
    assert listed.code == 0 and "a paper boat" in listed.out and "succeeded" in listed.out


async def test_imagine_rejects_bad_input_naming_the_option_with_exit_2(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    result = await wirobot(cli_env, tmp_path, "imagine", "a cat", "--steps", "900")
    assert result.code == 2
    assert "steps" in result.err and "150" in result.err
    assert "Traceback" not in result.err
    assert wiro.calls["run"] == 0

    wrong = await wirobot(cli_env, tmp_path, "imagine", "a cat", "--scheduler", "DDIMScheduler")
    assert wrong.code == 2 and "scheduler" in wrong.err


async def test_a_failed_job_exits_1_with_wiros_reason(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    wiro.next_outcome("failed")
    result = await wirobot(cli_env, tmp_path, "imagine", "a cat")
    assert result.code == 1
    assert "CUDA out of memory" in result.out


async def test_ctrl_c_cancels_the_wiro_task_and_exits_1(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    wiro.hold()
    process = await start(cli_env, tmp_path, "imagine", "a slow cat")
    assert process.stdout is not None
    async with asyncio.timeout(60):
        while b"queued at Wiro" not in await process.stdout.readline():
            pass
        process.send_signal(signal.SIGINT)
        rest, _ = await process.communicate()
    assert process.returncode == 1
    assert b"cancel: cancelled" in rest
    assert wiro.calls["cancel"] == 1


async def test_bad_configuration_is_one_line_and_exit_2(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(cli_env, WIROBOT_JOBS__MAX_CONCURRENT="lots")
    result = await wirobot(env, tmp_path, "history")
    assert result.code == 2
    assert result.err.strip().count("\n") == 0
    assert "WIROBOT_JOBS__MAX_CONCURRENT" in result.err

    env = dict(cli_env)
    del env["WIROBOT_WIRO__API_KEY"]
    missing = await wirobot(env, tmp_path, "imagine", "a cat")
    assert missing.code == 2 and "WIROBOT_WIRO__API_KEY" in missing.err

    (tmp_path / "config.toml").write_text("[jobs]\nunknown_thing = 1\n")
    unknown = await wirobot(cli_env, tmp_path, "history")
    assert unknown.code == 2 and "jobs.unknown_thing" in unknown.err


async def test_settings_come_from_the_config_file_with_env_overrides(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    config = tmp_path / "custom.toml"
    config.write_text(f'[database]\npath = "{tmp_path / "from-file.db"}"\n')
    env = {k: v for k, v in cli_env.items() if k != "WIROBOT_DATABASE__PATH"}
    result = await wirobot(env, tmp_path, "--config", str(config), "history")
    assert result.code == 0 and "No jobs yet" in result.out
    assert str(tmp_path / "from-file.db") in result.out
    assert not (tmp_path / "from-file.db").exists()  # reading the history creates nothing


async def test_models_lists_the_five_models_and_their_inputs(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    result = await wirobot(cli_env, tmp_path, "models")
    assert result.code == 0
    for slug in (
        "geelong_hillbilly/Facechain",
        "wavymulder/portraitplus",
        "Adel_AI/Comics-Factory-v1",
        "ArsMachina/Ars-Niji-Style-v1",
        "Hevok/Studio-Trigger",
    ):
        assert slug in result.out
    assert "--negative-prompt" in result.out and "--refiner-steps" in result.out
    assert "NSFW" in result.out


async def test_check_reports_accepted_and_refused_credentials(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    ok = await wirobot(cli_env, tmp_path, "check")
    assert ok.code == 0 and "credentials accepted" in ok.out
    bad = await wirobot(dict(cli_env, WIROBOT_WIRO__API_KEY="wrong-key"), tmp_path, "check")
    assert bad.code == 1 and "refused" in bad.out
    assert "wrong-key" not in bad.out + bad.err


async def test_models_lists_extra_models_the_bot_has_read_from_wiro(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    from bot.catalog.catalog import Catalog
    from bot.wiro import Credentials, WiroClient
    from tests.wiro_standin import default_tool_items

    wiro.add_tool("someone/Watercolour-XL", default_tool_items(), title="Watercolour XL")
    env = dict(cli_env, WIROBOT_MODELS__EXTRA='["someone/Watercolour-XL", "someone/Unread"]')
    import aiohttp

    async with (
        aiohttp.ClientSession() as session,
        await Store.open(tmp_path / "db" / "wirobot.db") as store,
    ):
        client = WiroClient(
            session, Credentials(wiro.api_key, wiro.api_secret), base_url=wiro.base_url
        )
        await Catalog.from_seeds().load_extra(["someone/Watercolour-XL"], client, store.tools)

    result = await wirobot(env, tmp_path, "models")
    assert result.code == 0
    assert "someone/Watercolour-XL" in result.out
    assert "someone/Unread: not read from Wiro yet" in result.out


async def test_the_price_before_the_cost_after_and_usage_on_the_command_line(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    before = await wirobot(cli_env, tmp_path, "models")
    assert "price: unknown a run with its defaults (the bot reads prices" in before.out

    result = await wirobot(cli_env, tmp_path, "imagine", "a paper boat", "--samples", "2")
    assert result.code == 0, result.err
    assert f"{MODEL}, seed" in result.out and ", about $0.0060" in result.out
    assert "cost $0.0060" in result.out

    listed = await wirobot(cli_env, tmp_path, "history")
    assert "succeeded  $0.0060 " in listed.out

    models = await wirobot(cli_env, tmp_path, "models")  # the prices kept at the run's start
    assert "price: about $0.0030 a run with its defaults\n" in models.out

    spent = await wirobot(cli_env, tmp_path, "usage", "--period", "all")
    assert spent.code == 0, spent.err
    lines = spent.out.splitlines()
    assert lines[0] == "all jobs, all time: $0.0060 for 1 job"
    assert any(line.split() == ["command", "line", "$0.0060", "1", "job"] for line in lines)
    assert any(line.split() == [MODEL, "$0.0060", "1", "job"] for line in lines)

    other = await wirobot(cli_env, tmp_path, "usage", "--guild", "5", "--period", "today")
    assert other.out.splitlines() == ["guild 5, today (UTC): $0.00 for 0 jobs"]
    bad = await wirobot(cli_env, tmp_path, "usage", "--period", "year")
    assert bad.code == 2 and "invalid choice" in bad.err
