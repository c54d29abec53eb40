"""Workloads (a)-(c) on our system, with the definitions of bench/measure.py that the peers use too.

(a) enqueue: N `schedule_job` calls one after another on Django's connection in autocommit (each call is its
    own transaction and commit), and `schedule_jobs` in chunks of BENCH_BULK_CHUNK (1,000).
(b) drain: N pre-enqueued no-op jobs, `runjobworker --burst --no-scheduler --concurrency C` spawned, timed
    from spawn to the moment the poller sees all N done; the 10→90% steady rate from the same samples.
(c) latency: an idle non-burst worker (LISTEN/NOTIFY), 200 probes 20 ms apart, enqueue call → handler start.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from bench import measure, procs
from bench.config import RESULTS_DIR, Config
from bench.db import Db

#: One tenant for every bench job (the API requires one; the peers have no such notion).
TENANT = uuid.UUID("00000000-0000-4000-8000-00000000be0c")


def _runner():
    from jobscheduler import JobRunnerFactory

    return JobRunnerFactory.get_instance()


def enqueue_single(n: int, name: str = "noop") -> dict[str, Any]:
    runner = _runner()
    return measure.timed_enqueue(
        n,
        lambda: runner.schedule_job(name, {}, tenant_id=TENANT),
        f"JobRunnerFactory.get_instance().schedule_job({name!r}, {{}}, tenant_id=T), autocommit",
    )


def enqueue_bulk(n: int, chunk: int, name: str = "noop") -> dict[str, Any]:
    runner = _runner()
    t = time.perf_counter()
    for start in range(0, n, chunk):
        runner.schedule_jobs(name, [{} for _ in range(min(chunk, n - start))], tenant_id=TENANT)
    dt = time.perf_counter() - t
    return {"n": n, "seconds": dt, "jobs_per_s": n / dt, "api": f"runner.schedule_jobs(name, [...]) x{chunk}"}


def worker_args(cfg: Config, burst: bool = True) -> list[str]:
    args = ["--no-scheduler", "--concurrency", str(cfg.concurrency)]
    return ["--burst", *args] if burst else args


def drain(
    cfg: Config, db: Db, n: int, processes: int = 1, label: str = "drain", timeout: float | None = None
) -> dict[str, Any]:
    """Spawn `processes` burst workers on N queued jobs; time spawn → all done (bench.measure)."""
    env = procs.worker_env(cfg.database_url)
    t_spawn = time.monotonic()
    workers = [procs.spawn_worker(worker_args(cfg), f"{label}-{i}", env) for i in range(processes)]
    try:
        count = procs.guarded_counter(lambda: n - db.remaining(), n, workers)
        out = measure.wait_progress(count, n, timeout or measure.PROC_TIMEOUT, label, t_start=t_spawn)
    finally:
        for w in workers:
            procs.stop(w)
    out["processes"] = processes
    out["concurrency"] = cfg.concurrency
    return out


def latency(cfg: Config, db: Db) -> dict[str, Any]:
    """The common latency procedure against an idle, non-burst worker woken by LISTEN/NOTIFY."""
    runner = _runner()
    path = Path(RESULTS_DIR) / "latency-jobscheduler.txt"
    path.unlink(missing_ok=True)
    env = procs.worker_env(cfg.database_url, {"BENCH_LAT_FILE": str(path)})
    worker = procs.spawn_worker(worker_args(cfg, burst=False), "latency", env)
    try:
        return measure.probe_latency(
            lambda: runner.schedule_job("probe", {"t": time.time()}, tenant_id=TENANT), path
        )
    finally:
        procs.stop(worker)
