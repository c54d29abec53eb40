"""A PostgreSQL cluster of the test's own, which the test may stop, start and restart at will.

The session's database must stay up (it holds the ledger and every other test's data), so a test that takes
the record's database away runs the record on a cluster made for it: `initdb` in a temporary folder, on a free
port, with the Debian binaries (`/usr/lib/postgresql/<version>/bin`, newest first), else the ones bundled with
`pgserver`. PostgreSQL refuses to run as root: as root, the server runs as an unprivileged OS user (`postgres`
or `pgserver` when one exists, else one created for the purpose).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from tests.support.processes import ROOT

#: Unprivileged users PostgreSQL may run as, in order of preference; the last is created when none exists.
SERVER_USERS = ("postgres", "pgserver", "jobscheduler-pg")


def _binaries() -> Path:
    for found in sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    ):
        if (found / "pg_ctl").exists():
            return found
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
    if not (bundled / "pg_ctl").exists():
        raise RuntimeError("No PostgreSQL binaries: neither /usr/lib/postgresql/*/bin nor pgserver's")
    return bundled


def _server_user() -> str | None:
    """The OS user to run the server as (None: the current one, which is not root)."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    name = SERVER_USERS[-1]
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True
    )
    return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnPostgres:
    """One cluster: `start()`, `stop()`, `restart()`, `url` (for DATABASE_URL) and `libpq` (for psycopg)."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.user = _server_user()
        self.port = _free_port()
        self.base = Path(tempfile.mkdtemp(prefix="jobscheduler-own-pg-"))
        self.base.chmod(0o755)
        self.data = self.base / "data"
        self.sockets = self.base / "run"
        self.log = self.base / "server.log"
        self.dbname = "jobs_outage"
        role = self.user or pwd.getpwuid(os.geteuid()).pw_name
        self.url = f"postgresql://{role}@127.0.0.1:{self.port}/{self.dbname}"
        self.libpq = f"host=127.0.0.1 port={self.port} dbname={self.dbname} user={role}"
        self.data.mkdir()
        self.sockets.mkdir()
        self.log.touch()
        if self.user:
            for path in (self.data, self.sockets, self.log):
                shutil.chown(path, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-E", "UTF8", "--no-instructions")

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}\n{self.log_tail()}"
            )

    def _ctl(self, action: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sockets}"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-m", "fast", action
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """A fast shutdown (`pg_ctl stop -m fast`): every connection is cut, new ones are refused until
        `start()`."""
        self._ctl("stop")

    def stop_now(self) -> None:
        """The same fast shutdown, signalled straight to the postmaster (SIGINT) and waited for: `pg_ctl` through
        `runuser` starts too slowly to hit a given moment."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        raise RuntimeError(f"PostgreSQL (pid {pid}) did not shut down in 60 s:\n{self.log_tail()}")

    def restart(self) -> None:
        self._ctl("restart")

    def create_database(self) -> None:
        admin = self.libpq.replace(f"dbname={self.dbname}", "dbname=postgres")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.dbname}"')

    def migrate(self) -> None:
        """`manage.py migrate` against this cluster, in a process of its own (the test's Django stays as is)."""
        env = {**os.environ, "DATABASE_URL": self.url, "DJANGO_SETTINGS_MODULE": "project.settings"}
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
