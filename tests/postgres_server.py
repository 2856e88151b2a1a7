"""A real PostgreSQL server for the tests, started in a temporary folder.

Debian's `postgresql` package ships the server under /usr/lib/postgresql/<n>/bin. PostgreSQL
refuses to run as root, so as root it runs as the `postgres` user. It listens on a loopback
port with `trust` authentication (any password is accepted: the tests check that passwords
are masked, not that they are right), and trades durability for speed (fsync off).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresUnavailable(Exception):
    """Why no server could be started (the tests that need one are skipped with it)."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise PostgresUnavailable(
        "no PostgreSQL server found (install Debian's postgresql package: .ci/run does)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """`start()` then `url(database)`, `stop()` at the end."""

    def __init__(self) -> None:
        self.port = 0
        self._dir: Path | None = None
        self._bin = Path()
        self._as: list[str] = []

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        auth = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._bin = _bin_dir()
        self._dir = Path(tempfile.mkdtemp(prefix="wirobot-pg-"))
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and no `postgres` user") from None
            os.chown(self._dir, user.pw_uid, user.pw_gid)
            self._as = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
            ]
        data = self._dir / "data"
        self._run(
            "initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--locale=C",
        )
        self.port = _free_port()
        options = (
            f"-p {self.port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(self._dir / "log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        if self._dir is None:
            return
        with contextlib.suppress(PostgresUnavailable):
            self._run("pg_ctl", "-D", str(self._dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def _run(self, program: str, *args: str) -> None:
        command = [*self._as, str(self._bin / program), *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PostgresUnavailable(f"{program} could not run: {exc}") from None
        if done.returncode != 0:
            log = ""
            if self._dir is not None and (self._dir / "log").exists():
                log = (self._dir / "log").read_text(errors="replace")[-500:]
            raise PostgresUnavailable(
                f"{program} failed: {(done.stderr or done.stdout).strip()[-500:]} {log}".strip()
            )
