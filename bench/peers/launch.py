"""The driver's side of the peers: one subprocess per peer in the bench virtualenv, servers around them.

Runs from `make bench` (in the project's .venv). For each peer in BENCH_PEERS it starts the server the peer
needs (Redis for Celery, a fresh Temporal dev server for bare Temporal; PostgreSQL is already up), runs
`.bench-venv/bin/python -m bench.peers NAME` with a hard time limit, stops the server, and reads back the
peer's JSON. A peer that fails is recorded and the next one runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import config, procs, services
from bench.peers import PEERS, venv

OUT = config.RESULTS_DIR / "peers"
#: Hard cap per peer (the slowest, django-q2 at its defaults, takes a few minutes at N = 20,000).
PEER_TIMEOUT = float(os.environ.get("BENCH_PEER_TIMEOUT", "1500"))

#: Our process's settings, which must not reach the peers: the Django peers set DJANGO_SETTINGS_MODULE only
#: when unset, and Celery turns on its Django fix-up when it is set, so a leaked `project.settings` breaks them.
OURS_ONLY = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "JOBSCHEDULER",
    "JOB_RUNNER_TYPE",
    "JOB_RUNNER_FALLBACK_TO_PGBOSS",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_JOB_TASK_QUEUE",
    "BENCH_LAT_FILE",
    "VIRTUAL_ENV",
    "PYTHONPATH",
)


def run(peers: list[str], errors: list[str]) -> dict[str, Any]:
    """Run each named peer; {result name: its JSON} (a django-q2 variant has its own name).

    A peer that could not run at all (its server, its driver) adds a line to `errors`; a phase that failed
    inside a driver is in that peer's own JSON.
    """
    python = venv.ensure()
    for name in peers:
        t = time.monotonic()
        print(f"[peers] {name}", flush=True)
        try:
            with _server_for(PEERS[name].needs):
                rc = _run_one(python, name)
            if rc != 0:
                errors.append(f"{name}: driver exited with code {rc} (log: results/logs/peers-{name}.log)")
        except (services.ServerError, OSError, subprocess.SubprocessError) as exc:
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
        print(f"[peers] {name} done in {time.monotonic() - t:.0f}s", flush=True)
    return read(OUT)


def reset() -> None:
    """Forget the previous run's results (a run reads back every JSON in the folder)."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()


def _server_for(needs: str | None) -> contextlib.AbstractContextManager[Any]:
    if needs == "redis":
        return services.Redis(config.redis_port())
    if needs == "temporal":
        cli = venv.python().parent / "temporal"
        return services.TemporalDevServer(cli, config.temporal_port())
    return contextlib.nullcontext()


def _run_one(python: Path, name: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in OURS_ONLY}
    env |= PEERS[name].env | {
        "PYTHONPATH": str(config.REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "BENCH_PEER_OUT": str(OUT),
        "BENCH_OUT": str(config.RESULTS_DIR),
    }
    config.LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(config.LOG_DIR / f"peers-{name}.log", "w") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "bench.peers", name],
            cwd=str(config.REPO),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return proc.wait(timeout=PEER_TIMEOUT)
        except subprocess.TimeoutExpired:
            # SIGTERM first: the driver's finally blocks stop its workers and write its JSON.
            procs.stop(proc, grace=30)
            return 124


def read(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            res = json.loads(path.read_text())
        except ValueError:
            continue
        if "peer" in res:
            out[res["peer"]] = res
    return out
