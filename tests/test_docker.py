"""The Docker image and compose file, as far as they can be tried without a Docker daemon:
the files parse, the layers are ordered for the cache, and the entry point works the way the
image runs it (its user, its working folder, its paths)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
from pathlib import Path

import yaml

from tests.test_cli import MODEL, cli_env
from tests.test_cli_input import without_root_powers
from tests.wiro_standin import WiroStandIn

__all__ = ["cli_env"]

ROOT = Path(__file__).resolve().parent.parent


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined."""
    lines: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        lines.append((word.upper(), rest.strip()))
    return lines


def test_dependencies_are_installed_in_a_layer_before_the_code() -> None:
    steps = instructions()
    copies = [i for i, (word, _) in enumerate(steps) if word == "COPY"]
    first_install = next(i for i, (w, a) in enumerate(steps) if w == "RUN" and "pip install" in a)
    code = next(i for i, (w, a) in enumerate(steps) if w == "COPY" and a.startswith("bot "))
    assert steps[copies[0]][1] == "pyproject.toml ./"
    assert copies[0] < first_install < code


def test_the_image_runs_as_its_own_user_in_a_folder_it_may_write() -> None:
    steps = instructions()
    user = [a for w, a in steps if w == "USER"][-1]
    assert user not in ("root", "0")
    workdir = [a for w, a in steps if w == "WORKDIR"][-1]
    env = dict(part.split("=", 1) for w, a in steps if w == "ENV" for part in shlex.split(a))
    data_folder = str(Path(env["WIROBOT_DATABASE__PATH"]).parent)
    setup = " ".join(a for w, a in steps if w == "RUN")
    for folder in (workdir, data_folder):
        assert f"mkdir -p {folder}" in setup or f" {folder} " in setup
        assert f"chown {user}:{user} " in setup and folder in setup.split("chown", 1)[1]
    assert [a for w, a in steps if w == "VOLUME"] == [f'["{data_folder}"]']


def test_build_outputs_and_secrets_stay_out_of_the_image() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name in (".git", ".venv", "*.egg-info", "build", "**/__pycache__", "tests", "data"):
        assert name in ignored, name
    for secret in ("config.toml", "wirobot.env", ".env"):
        assert secret in ignored, secret


def test_the_compose_file_has_the_volume_a_restart_policy_and_an_env_file() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["wirobot"]
    assert service["build"] == "."
    assert service["restart"] == "unless-stopped"
    assert service["env_file"] == "wirobot.env"
    assert "wirobot-data:/data" in service["volumes"]
    assert "wirobot-data" in compose["volumes"]
    example = (ROOT / "wirobot.env.example").read_text()
    for name in ("WIROBOT_DISCORD__TOKEN", "WIROBOT_WIRO__API_KEY", "WIROBOT_WIRO__API_SECRET"):
        assert f"\n{name}=" in example
    readme = (ROOT / "README.md").read_text()
    assert "cp wirobot.env.example wirobot.env" in readme
    assert "docker compose up -d --build" in readme


async def test_the_entry_point_works_as_the_image_runs_it(
    cli_env: dict[str, str], tmp_path: Path, wiro: WiroStandIn
) -> None:
    """`python -m bot imagine` in a fresh working folder, without root's powers over files,
    the database under the data folder: the images land in ./out."""
    steps = instructions()
    entry = json.loads([a for w, a in steps if w == "ENTRYPOINT"][-1])
    assert entry == ["python", "-m", "bot"]
    work, data = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    data.mkdir()
    env = dict(cli_env, WIROBOT_DATABASE__PATH=str(data / "wirobot.db"), HOME=str(work))
    process = await asyncio.create_subprocess_exec(
        *without_root_powers(),
        sys.executable,
        *entry[1:],
        "imagine",
        "a lighthouse",
        "--seed",
        "3",
        env=env,
        cwd=work,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert [p.name for p in (work / "out").iterdir()] == [f"1-{MODEL.split('/')[1]}-seed3-1.png"]
    assert (data / "wirobot.db").is_file() and (data / "outputs").is_dir()
    assert os.listdir(work) == ["out"]
