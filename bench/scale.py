"""Workload (d): claim+complete throughput with a big history, and worker memory over a long run.

The history is bulk-loaded in SQL (generate_series) as copies of one job the real worker finished, with its
two job_details rows, so every index and row width is what the engine itself writes. Queued jobs go through
`schedule_jobs`, the real enqueue path. The empty-table figure is the same drain on an empty database.
"""

from __future__ import annotations

import time
from typing import Any

from bench import measure, procs, workloads
from bench.config import Config
from bench.db import Db

#: Copies of the template job (finished, in `jobs`) and its details; created_at spread over 20 days.
LOAD_HISTORY_SQL = """
WITH new AS (
    INSERT INTO jobs (tenant, job_id, type, metadata, status, created_at, updated_at, user_id, runner_type,
                      external_id, external_run_id)
    SELECT t.tenant, g.id, 'history', t.metadata, t.status, t.created_at - random() * interval '20 days',
           t.updated_at, t.user_id, t.runner_type, g.id::text, NULL
    FROM (SELECT * FROM jobs WHERE job_id = %(tpl)s) t,
         (SELECT gen_random_uuid() AS id FROM generate_series(1, %(n)s)) g
    RETURNING tenant, job_id
)
INSERT INTO job_details (tenant, detail_id, job_id, step_name, status, result, processed_at, retry_count)
SELECT new.tenant, gen_random_uuid(), new.job_id, d.step_name, d.status, d.result, d.processed_at, d.retry_count
FROM new CROSS JOIN (SELECT * FROM job_details WHERE job_id = %(tpl)s) d
"""


def _template_job(cfg: Config, db: Db) -> Any:
    """Run one real no-op job and return its id: the row the history is copied from."""
    workloads.enqueue_single(1)
    workloads.drain(cfg, db, 1, label="scale-template", timeout=60)
    return db.scalar("SELECT job_id FROM jobs WHERE type = 'noop' AND status = 'completed' LIMIT 1")


def load_history(cfg: Config, db: Db, finished: int, chunk: int = 200_000) -> dict[str, Any]:
    tpl = _template_job(cfg, db)
    t = time.perf_counter()
    for start in range(0, finished, chunk):
        db.execute(LOAD_HISTORY_SQL, {"tpl": tpl, "n": min(chunk, finished - start)})
    db.execute("DELETE FROM job_details WHERE job_id = %s", [tpl])
    db.execute("DELETE FROM jobs WHERE job_id = %s", [tpl])
    db.execute("VACUUM ANALYZE jobs")
    db.execute("VACUUM ANALYZE job_details")
    db.execute("CHECKPOINT")
    return {"finished_rows": finished, "load_seconds": time.perf_counter() - t}


def claim_complete(cfg: Config, db: Db, finished: int, queued: int) -> dict[str, Any]:
    """Drain `queued` jobs on an empty table, then again beside `finished` history rows; the ratio."""
    out: dict[str, Any] = {"queued": queued, "finished": finished}
    db.clean()
    workloads.enqueue_bulk(queued, cfg.bulk_chunk)
    db.execute("CHECKPOINT")
    out["empty"] = workloads.drain(cfg, db, queued, label="scale-empty")
    db.clean()
    out["load"] = load_history(cfg, db, finished)
    workloads.enqueue_bulk(queued, cfg.bulk_chunk)
    db.execute("CHECKPOINT")
    out["loaded"] = workloads.drain(cfg, db, queued, label="scale-loaded")
    out["recorded_check"] = db.recorded("noop", queued)
    for key in ("jobs_per_s", "steady_jobs_per_s"):
        empty, loaded = out["empty"].get(key), out["loaded"].get(key)
        out[f"ratio_{key}"] = loaded / empty if empty and loaded else None
    db.clean()
    return out


def memory(cfg: Config, db: Db, n: int, interval: float = 1.0) -> dict[str, Any]:
    """RSS of one burst worker sampled every second while it drains N jobs enqueued beforehand."""
    db.clean()
    enq = workloads.enqueue_bulk(n, cfg.bulk_chunk)
    db.execute("CHECKPOINT")
    env = procs.worker_env(cfg.database_url)
    t0 = time.monotonic()
    worker = procs.spawn_worker(workloads.worker_args(cfg), "memory", env)
    samples: list[tuple[float, int, float]] = []
    try:
        deadline = t0 + max(measure.PROC_TIMEOUT, n / 200.0)
        while True:
            done = n - db.remaining()
            rss = procs.rss_mb(worker.pid)
            if rss is not None:
                samples.append((time.monotonic() - t0, done, rss))
            if done >= n or worker.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(interval)
        done = n - db.remaining()
    finally:
        procs.stop(worker)
    elapsed = time.monotonic() - t0
    out: dict[str, Any] = {"n": n, "done": done, "elapsed_s": elapsed, "jobs_per_s": done / elapsed}
    out["enqueue_bulk_jobs_per_s"] = enq["jobs_per_s"]
    out.update(_rss_summary(samples, n))
    out["samples"] = samples
    db.clean()
    return out


def _rss_summary(samples: list[tuple[float, int, float]], n: int) -> dict[str, Any]:
    """RSS once warmed up (10% done), at 50%, at the end, the peak, and the growth 10% → end."""

    def at(frac: float) -> float | None:
        return next((rss for _, done, rss in samples if done >= frac * n), None)

    if not samples:
        return {}
    rss10, rss50, last = at(0.10), at(0.50), samples[-1][2]
    return {
        "rss_mb_at_10pct": rss10,
        "rss_mb_at_50pct": rss50,
        "rss_mb_at_end": last,
        "rss_mb_max": max(s[2] for s in samples),
        "rss_growth_mb_10pct_to_end": (last - rss10) if rss10 is not None else None,
    }
