"""The peers, run by their own harness (run_all.sh) in the same invocation, on the same server.

run_all.sh reuses a PostgreSQL already answering on BENCH_PG_PORT (ours) and leaves it running; it starts
and stops Redis and the Temporal dev server itself. Its output goes to results/logs/peers.log; its per-peer
JSON (the only thing we read back) to results/peers/.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.config import LOG_DIR, PEERS_DIR, RESULTS_DIR, Config

PEER_RESULTS = RESULTS_DIR / "peers"
PEER_RUN_DIR = RESULTS_DIR / "peer-run"


def run(cfg: Config) -> dict[str, Any]:
    """Run run_all.sh for cfg.peers; returns {peer name: its result JSON}."""
    PEER_RESULTS.mkdir(parents=True, exist_ok=True)
    for old in PEER_RESULTS.glob("*.json"):
        old.unlink()
    env = dict(
        _clean_environ(),
        BENCH_PEERS=" ".join(cfg.peers),
        BENCH_N=str(cfg.n),
        BENCH_N_TEMPORAL=str(cfg.n_temporal),
        BENCH_PG_PORT=str(cfg.pg_port),
        BENCH_RUN_DIR=str(PEER_RUN_DIR),
        BENCH_RESULTS=str(PEER_RESULTS),
    )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "peers.log"
    print(f"[peers] bash {PEERS_DIR / 'run_all.sh'} (BENCH_PEERS='{env['BENCH_PEERS']}'); log: {log_path}")
    t = time.monotonic()
    with open(log_path, "w") as log:
        rc = subprocess.run(
            ["bash", str(PEERS_DIR / "run_all.sh")],
            cwd=str(RESULTS_DIR),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        ).returncode
    print(f"[peers] done in {time.monotonic() - t:.0f}s (exit {rc})", flush=True)
    return read(PEER_RESULTS)


#: Our own process's settings, which must not reach the peers: the Django peers use
#: os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...) and Celery turns on its Django fix-up when the
#: variable is set, so a leaked `project.settings` breaks all of them.
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
)


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in OURS_ONLY}


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
