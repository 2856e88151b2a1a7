"""Every value a person can give the `wirobot` command ends in a result or one clear line:
run as a real process against the Wiro stand-in."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import pty
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.wiro.types import TaskStatus
from tests.test_cli import MODEL, Result, cli_env, wirobot
from tests.wiro_standin import WiroStandIn

__all__ = ["cli_env"]  # the fixture, shared with test_cli


def one_line(result: Result) -> str:
    """The one line the command ended with (log lines aside)."""
    assert "Traceback" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("wirobot: ")]
    assert len(lines) == 1, result.err
    return lines[0]


# -- the database ---------------------------------------------------------------------------


async def test_a_database_folder_that_cannot_be_created_is_one_line_and_exit_2(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    (tmp_path / "blocker").write_text("a file where a folder should be")
    env = dict(cli_env, WIROBOT_DATABASE__PATH=str(tmp_path / "blocker" / "db" / "w.db"))
    for command in (["imagine", "a cat"], ["run"]):
        result = await wirobot(dict(env, WIROBOT_DISCORD__TOKEN="x.y.z"), tmp_path, *command)
        assert result.code == 2
        line = one_line(result)
        assert "WIROBOT_DATABASE__PATH" in line and "blocker" in line
    assert wiro.calls["run"] == 0


async def test_a_file_that_is_not_sqlite_is_left_untouched(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my shopping list\n")
    env = dict(cli_env, WIROBOT_DATABASE__PATH=str(notes))
    for command in (["imagine", "a cat"], ["history"], ["run"]):
        result = await wirobot(dict(env, WIROBOT_DISCORD__TOKEN="x.y.z"), tmp_path, *command)
        assert result.code == 2, command
        line = one_line(result)
        assert str(notes) in line and "not an SQLite database" in line
    assert notes.read_text() == "my shopping list\n"
    assert not notes.with_name("notes.txt-wal").exists()
    assert wiro.calls["run"] == 0


_DROP_FILE_POWERS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


@functools.cache
def without_root_powers() -> list[str]:
    """As root, drop the power to write past file permissions (root writes read-only files
    otherwise); any other user is bound by them already."""
    if os.geteuid() != 0:
        return []
    try:
        subprocess.run([*_DROP_FILE_POWERS, "true"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("root, and setpriv cannot drop its file powers here")
    return _DROP_FILE_POWERS


async def test_a_read_only_database_is_one_line_naming_it(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    database = tmp_path / "wirobot.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE notes (text)")
    conn.close()
    database.chmod(0o444)
    before = database.read_bytes()
    process = await asyncio.create_subprocess_exec(
        *without_root_powers(),
        sys.executable,
        "-m",
        "bot",
        "history",
        env=dict(cli_env, WIROBOT_DATABASE__PATH=str(database)),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    result = Result(process.returncode or 0, out.decode(), err.decode())
    assert result.code == 2
    line = one_line(result)
    assert str(database) in line and "read-only" in line
    assert database.read_bytes() == before


# -- values people type ---------------------------------------------------------------------


async def test_a_prompt_that_is_not_utf8_is_refused_in_words(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "imagine",
        b"caf\xe9 at night",
        env=cli_env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    result = Result(process.returncode or 0, out.decode(), err.decode())
    assert result.code == 2
    line = one_line(result)
    assert "the prompt is not valid UTF-8" in line and "caf\\xe9" in line
    assert wiro.calls["run"] == 0


async def test_a_number_of_thousands_of_digits_is_refused_in_words(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    huge = "9" * 5000
    result = await wirobot(cli_env, tmp_path, "imagine", "a cat", "--steps", huge)
    assert result.code == 2
    line = one_line(result)
    assert "steps must be a whole number from 1 to 150" in line and len(line) < 200

    listed = await wirobot(cli_env, tmp_path, "history", "--limit", huge)
    assert listed.code == 2 and "expected a whole number" in listed.err
    assert len(listed.err) < 500 and "Traceback" not in listed.err
    assert wiro.calls["run"] == 0


async def test_an_out_folder_that_cannot_be_written_is_found_before_the_run(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    (tmp_path / "taken").write_text("a file")
    result = await wirobot(cli_env, tmp_path, "imagine", "a cat", "--out", "taken")
    assert result.code == 2
    assert "--out taken" in one_line(result)
    assert wiro.calls["run"] == 0


async def test_imagine_help_describes_every_option(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = await wirobot(cli_env, tmp_path, "imagine", "--help")
    assert result.code == 0
    assert "wirobot models" in result.out
    for words in ("how many images", "1 to 150", "multiple of 8", "default: random", "--out"):
        assert words in result.out
    assert " str" not in result.out and " int\n" not in result.out


# -- what the command shows and writes ------------------------------------------------------


async def run_with_progress(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn, stdout: int
) -> asyncio.subprocess.Process:
    """Start `imagine`, let Wiro report 60% (18/30), then finish the task."""
    wiro.hold()
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "imagine",
        "a windmill",
        "--seed",
        "77",
        env=cli_env,
        cwd=tmp_path,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
    )


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - the stand-in has no events to wait on
            await asyncio.sleep(0.01)


async def drive(wiro: WiroStandIn) -> None:
    await until(lambda: bool(wiro.tasks))
    (task_id,) = wiro.tasks
    wiro.advance(task_id, TaskStatus.OUTPUT)
    wiro.report_progress(task_id, 60, 18, 30)
    # Once the socket has carried it, the end comes after it on the same connection.
    await until(lambda: wiro.socket.progress_sent[task_id] >= 1)
    wiro.finish(task_id)


async def test_in_a_pipe_progress_is_plain_lines_with_the_percent(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    process = await run_with_progress(cli_env, tmp_path, wiro, asyncio.subprocess.PIPE)
    await drive(wiro)
    async with asyncio.timeout(30):
        out, err = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert "generating 60% (18/30)" in text
    assert "\r" not in text and "\x1b" not in text
    assert f"1-{MODEL.split('/')[1]}-seed77-1.png" in text
    assert (tmp_path / "out" / f"1-{MODEL.split('/')[1]}-seed77-1.png").is_file()


async def test_on_a_terminal_progress_is_a_live_bar(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    leader, follower = pty.openpty()
    try:
        process = await run_with_progress(cli_env, tmp_path, wiro, follower)
        os.close(follower)
        follower = -1
        await drive(wiro)
        async with asyncio.timeout(30):
            await process.wait()
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: all read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    text = seen.decode()
    assert process.returncode == 0
    assert "\r\x1b[K" in text
    assert "generating ▰▰▰▰▰▰▱▱▱▱ 60% · step 18/30" in text
    assert "done in" in text


async def test_json_logs_are_one_object_a_line_and_status_stays_on_stdout(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    wiro.next_outcome("failed")
    env = dict(cli_env, WIROBOT_LOGGING__FORMAT="json")
    result = await wirobot(env, tmp_path, "imagine", "a cat")
    assert result.code == 1
    events = [json.loads(line) for line in result.err.splitlines()]
    assert events and all({"time", "level", "logger", "message"} <= e.keys() for e in events)
    assert any("failed" in e["message"] for e in events)
    assert all(line.startswith("[") for line in result.out.splitlines())


async def test_reading_commands_create_nothing_and_check_prints_no_library_warnings(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    for command in ("history", "models"):
        result = await wirobot(cli_env, tmp_path, command)
        assert result.code == 0 and result.err == "", result.err
    assert not (tmp_path / "db").exists()
    checked = await wirobot(dict(cli_env, WIROBOT_DISCORD__TOKEN=""), tmp_path, "check")
    assert checked.code == 0
    assert "database:" in checked.out
    assert not (tmp_path / "db").exists()  # checked, not made
    assert "WARNING" not in checked.err and "PyNaCl" not in checked.err + checked.out


@pytest.mark.parametrize("value", ["-1", "lots", "0"])
async def test_history_limit_is_refused_in_words(
    cli_env: dict[str, str], tmp_path: Path, value: str
) -> None:
    result = await wirobot(cli_env, tmp_path, "history", "--limit", value)
    assert result.code == 2 and "--limit" in result.err and "Traceback" not in result.err


# -- a new admin's first hour ---------------------------------------------------------------


async def test_invite_prints_the_link_for_the_tokens_application(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    # A bot token starts with the bot's id in base64; the rest here is made up.
    token = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GabcDe.not-a-real-signature-at-all"
    result = await wirobot(dict(cli_env, WIROBOT_DISCORD__TOKEN=token), tmp_path, "invite")
    assert result.code == 0, result.err
    assert result.out.strip() == (
        "https://discord.com/oauth2/authorize?client_id=1234567890123456789"
        "&scope=bot+applications.commands&permissions=274877959168"
    )
    assert token not in result.out + result.err

    by_id = await wirobot(cli_env, tmp_path, "invite", "--application-id", "42424242424242424")
    assert by_id.code == 0 and "client_id=42424242424242424&" in by_id.out


async def test_invite_without_a_usable_token_says_what_to_do(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    missing = await wirobot(cli_env, tmp_path, "invite")
    assert missing.code == 2 and "WIROBOT_DISCORD__TOKEN" in one_line(missing)
    garbled = await wirobot(dict(cli_env, WIROBOT_DISCORD__TOKEN="paste-error"), tmp_path, "invite")
    assert garbled.code == 2 and "Reset Token" in one_line(garbled)
    assert "paste-error" not in garbled.err
