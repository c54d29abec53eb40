"""The throw-away PostgreSQL 15 cluster every system is measured on: initdb defaults, fsync on, loopback only.

A fresh data folder under the system's temporary directory for each run, created by `initdb` (Debian's
binaries, $PG_BIN), removed when the cluster stops. PostgreSQL refuses to run as root, so as root the bench
runs it as an unprivileged OS user ($BENCH_PG_OS_USER, created if missing). A port already taken is an error,
never a server to reuse: the bench drops and creates databases, which must not happen to someone else's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = os.environ.get("BENCH_PG_OS_USER", "pgbench")


class ServerError(Exception):
    """A server the bench needs could not be started; the message says what to change."""


def dsn(port: int, db: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{db}"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _as_user() -> list[str]:
    """Postgres refuses to run as root: run its tools as an unprivileged user."""
    if os.getuid() != 0:
        return []
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", OS_USER], check=True)
    return ["runuser", "-u", OS_USER, "--"]


class Cluster:
    """initdb + start on `port`; stop() shuts it down and deletes its folder."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root: Path | None = None

    @property
    def data(self) -> Path:
        assert self.root
        return self.root / "data"

    @property
    def log(self) -> Path:
        """The server log (statement durations of the profile workloads are read from it)."""
        assert self.root
        return self.root / "postgres.log"

    def start(self) -> None:
        if port_open(self.port):
            raise ServerError(f"127.0.0.1:{self.port} is already in use: set BENCH_PG_PORT to a free port")
        if not (PG_BIN / "initdb").exists():
            raise ServerError(f"no initdb in {PG_BIN}: install postgresql-15 or set PG_BIN")
        as_user = _as_user()
        self.root = Path(tempfile.mkdtemp(prefix=f"jobscheduler-bench-pg-{self.port}-"))
        if as_user:
            shutil.chown(self.root, OS_USER)
        with open(self.root / "initdb.log", "w") as log:
            subprocess.run(
                [
                    *as_user,
                    PG_BIN / "initdb",
                    "-D",
                    self.data,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
        # Server settings beyond initdb's defaults, for a measurement of their effect (the table reports the
        # settings a run used): BENCH_PG_OPTIONS="-c shared_buffers=1GB".
        opts += f" {os.environ['BENCH_PG_OPTIONS']}" if os.environ.get("BENCH_PG_OPTIONS") else ""
        subprocess.run(
            [
                *as_user,
                PG_BIN / "pg_ctl",
                "-D",
                self.data,
                "-l",
                self.log,
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            ],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        print(f"[pg] started PostgreSQL on 127.0.0.1:{self.port} (data {self.data})", flush=True)

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*_as_user(), PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"],
                stdout=subprocess.DEVNULL,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        print("[pg] stopped and removed", flush=True)


def recreate_db(port: int, name: str) -> None:
    with psycopg.connect(dsn(port), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_db(port: int, name: str) -> None:
    with psycopg.connect(dsn(port), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings(port: int) -> dict[str, str]:
    """The server settings that decide commit cost, recorded next to the results."""
    names = (
        "server_version",
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "full_page_writes",
        "shared_buffers",
        "max_connections",
        "autovacuum",
        "wal_level",
    )
    with psycopg.connect(dsn(port), autocommit=True) as conn:
        return {name: conn.execute("SELECT current_setting(%s)", [name]).fetchone()[0] for name in names}


def set_system(port: int, name: str, value: str | None) -> None:
    """ALTER SYSTEM + reload: used only around the profiling drain (statement logging), never timed runs."""
    with psycopg.connect(dsn(port), autocommit=True) as conn:
        conn.execute("SET log_min_duration_statement = -1")  # not in the statement log being collected
        if value is None:
            conn.execute(f"ALTER SYSTEM RESET {name}")
        else:
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)  # the postmaster signals backends; give them a moment to re-read
