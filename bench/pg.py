"""The throw-away PostgreSQL 15 cluster, started exactly as the peer harness starts it (run_all.sh).

Same binaries (/usr/lib/postgresql/15/bin), same data folder and options, run as the same unprivileged OS
user, fsync and synchronous_commit at their defaults. When a server already answers on the port it is reused
and left running, as run_all.sh does; run_all.sh in turn reuses the one we started, so peers and we share
one server and its settings.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_ROOT = Path("/tmp/bench-pg")
PG_DATA = PG_ROOT / "data"
PG_LOG = PG_ROOT / "postgres.log"
OS_USER = os.environ.get("BENCH_PG_OS_USER", "pgbench")


def dsn(port: int, db: str = "postgres") -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{db}"


def is_ready(port: int) -> bool:
    return subprocess.run([PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode == 0


def _as_user() -> list[str]:
    """Postgres refuses to run as root: run its tools as the harness's unprivileged user."""
    if os.getuid() != 0:
        return []
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", OS_USER], check=True)
    return ["runuser", "-u", OS_USER, "--"]


class Cluster:
    """Start (or reuse) the cluster; stop it only if this process started it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.started = False

    def start(self) -> None:
        if is_ready(self.port):
            print(f"[pg] reusing the server already on 127.0.0.1:{self.port} (will not stop it)", flush=True)
            return
        as_user = _as_user()
        PG_ROOT.mkdir(parents=True, exist_ok=True)
        if as_user:
            shutil.chown(PG_ROOT, OS_USER)
        if not (PG_DATA / "PG_VERSION").exists():
            with open(PG_ROOT / "initdb.log", "w") as log:
                subprocess.run(
                    [
                        *as_user,
                        PG_BIN / "initdb",
                        "-D",
                        PG_DATA,
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
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={PG_ROOT}"
        subprocess.run(
            [*as_user, PG_BIN / "pg_ctl", "-D", PG_DATA, "-l", PG_LOG, "-w", "-t", "60", "-o", opts, "start"],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        self.started = True
        print(f"[pg] started PostgreSQL 15 on 127.0.0.1:{self.port} (data {PG_DATA})", flush=True)

    def stop(self) -> None:
        if not self.started:
            return
        subprocess.run(
            [*_as_user(), PG_BIN / "pg_ctl", "-D", PG_DATA, "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        self.started = False
        print("[pg] stopped", flush=True)


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
        rows = conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(names)])
        return dict(rows.fetchall())


def set_system(port: int, name: str, value: str | None) -> None:
    """ALTER SYSTEM + reload: used only around the profiling drain (statement logging), never timed runs."""
    with psycopg.connect(dsn(port), autocommit=True) as conn:
        if value is None:
            conn.execute(f"ALTER SYSTEM RESET {name}")
        else:
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)  # the postmaster signals backends; give them a moment to re-read
