"""A real PgBouncer (Debian's package, 1.18 on bookworm) in front of the test database, for the pooling tests.

It is installed with apt-get when missing (CI runs the suite as root on a fresh machine), started on a free
port with a config written for the test, and stopped at the end. Run as root, it drops to the user owning the
database's socket directory (PgBouncer refuses to run as root, and must reach that socket).
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

from django.db import connection


def ensure_installed() -> str:
    found = shutil.which("pgbouncer") or (Path("/usr/sbin/pgbouncer").exists() and "/usr/sbin/pgbouncer")
    if found:
        return str(found)
    if os.geteuid() != 0:
        raise RuntimeError("pgbouncer is not installed and this is not root: apt-get install pgbouncer")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "pgbouncer"],
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )
    return "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgBouncer:
    """PgBouncer in `pool_mode` between the test process, the workers and the test database."""

    def __init__(self, pool_mode: str = "transaction", pool_size: int = 8) -> None:
        self.binary = ensure_installed()
        # Its own folder under the system temp dir: pytest's tmp_path is private to root, and PgBouncer may
        # run as another user.
        workdir = self.workdir = Path(tempfile.mkdtemp(prefix="jobscheduler-pgbouncer-"))
        self.port = _free_port()
        s = connection.settings_dict
        host = s["HOST"] or s["OPTIONS"].get("host", "") or "127.0.0.1"
        target = [f"dbname={s['NAME']}", f"host={host}", f"user={s['USER']}"]
        if s["PORT"]:
            target.append(f"port={s['PORT']}")
        if s["PASSWORD"]:
            target.append(f"password={s['PASSWORD']}")
        self.dbname = s["NAME"]
        self.ini = workdir / "pgbouncer.ini"
        self.log = workdir / "pgbouncer.log"
        self.ini.write_text(
            "[databases]\n"
            f"{self.dbname} = {' '.join(target)}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = any\npool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 500\nserver_reset_query =\nidle_transaction_timeout = 30\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"admin_users = pgbouncer, {s['USER']}\n"
            f"logfile = {self.log}\n"
        )
        self.user = None
        if os.geteuid() == 0:
            owner = os.stat(host).st_uid if host.startswith("/") else pwd.getpwnam("nobody").pw_uid
            self.user = pwd.getpwuid(owner).pw_name
            os.chown(workdir, owner, -1)
            os.chown(self.ini, owner, -1)
        self.proc: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        args = [self.binary, *(["-u", self.user] if self.user else []), str(self.ini)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.proc.stdout.read().decode()}\n{self.logs()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on {self.port}:\n{self.logs()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def show(self, what: str) -> list[tuple]:
        """`SHOW POOLS` / `SHOW STATS` ... on the admin console (auth_type any lets anyone in)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, dbname="pgbouncer", user="pgbouncer", autocommit=True
        ) as conn:
            conn.prepare_threshold = None
            return conn.execute(f"SHOW {what}").fetchall()
