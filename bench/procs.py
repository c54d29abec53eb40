"""Processes the bench starts (workers, servers, peer drivers): each in its own session, stopped by its
process-group id, never by name, so nothing another engineer runs on the machine is touched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.config import BENCH_DIR, LOG_DIR, REPO

_live: dict[int, subprocess.Popen] = {}


def worker_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DEBUG": "false",  # the example site's default is on; production workers run without it
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra or {})
    return env


def spawn(cmd: list[str], name: str, env: dict[str, str], cwd: Path = REPO) -> subprocess.Popen:
    """Start `cmd` as the leader of a new session (so stop() can signal its whole group); log to NAME.log."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{name}.log", "ab") as log:
        log.write(f"\n=== {time.ctime()} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=str(cwd),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _live[proc.pid] = proc
    return proc


def spawn_worker(args: list[str], name: str, env: dict[str, str]) -> subprocess.Popen:
    """`python bench/worker_main.py ARGS` (runjobworker with the bench handlers) with our venv's interpreter."""
    return spawn([sys.executable, str(BENCH_DIR / "worker_main.py"), *args], name, env)


def stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds; then SIGKILL whatever the leader left.

    The last step catches children that outlive their leader (a prefork pool, a server's helpers).
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)
    _live.pop(proc.pid, None)


def stop_all() -> None:
    for proc in list(_live.values()):
        stop(proc, grace=5.0)


def rss_mb(pid: int) -> float | None:
    """Resident set size from /proc (no psutil needed); None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except FileNotFoundError:
        return None
    return None


def guarded_counter(count: Callable[[], int], n: int, procs: list[subprocess.Popen]) -> Callable[[], int]:
    """A done-counter that fails fast when every worker exited early.

    Burst workers exit as soon as the queue is empty, so "worker gone" is only an error if, counted again
    after seeing it gone, the jobs are still not all done (the peers' wait_progress would race on this).
    """

    def counter() -> int:
        c = count()
        if c < n and all(p.poll() is not None for p in procs):
            c = count()
            if c < n:
                codes = [p.returncode for p in procs]
                raise RuntimeError(f"workers exited (codes {codes}) with {c}/{n} jobs done")
        return c

    return counter
