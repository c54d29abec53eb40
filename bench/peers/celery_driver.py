"""Celery 5.7 on Redis (no persistence, no result backend, acks_late): the bench phases.

Enqueue: `noop.delay()`; "bulk": `group(noop.s() x1000).apply_async()`, which still publishes one message per
task (Celery has no bulk publish), reported under its own key. Worker: one `celery worker`, prefork pool with 2
children (the core count, Celery's default). Done: the `celery` list and the `unacked` hash both empty.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench import config, measure, procs
from bench.peers import harness

PEER = "celery"
CONCURRENCY = int(os.environ.get("BENCH_CELERY_CONCURRENCY", "2"))
WORKER = [
    sys.executable,
    "-m",
    "celery",
    "-A",
    "bench.peers.celery_app",
    "worker",
    "--pool=prefork",
    f"--concurrency={CONCURRENCY}",
    "--loglevel=WARNING",
]


def _redis() -> Any:
    import redis

    return redis.Redis(host="127.0.0.1", port=config.redis_port(), db=0)


def outstanding(r: Any) -> int:
    """Messages not finished: waiting in the list plus delivered and not yet acknowledged."""
    pipe = r.pipeline()
    pipe.llen("celery")
    pipe.hlen("unacked")
    waiting, unacked = pipe.execute()
    return waiting + unacked


def clean() -> None:
    r = _redis()
    r.flushdb()
    r.close()


def enqueue_single(n: int) -> dict[str, Any]:
    from bench.peers.celery_app import noop

    return measure.timed_enqueue(n, noop.delay, "noop.delay()")


def enqueue_group(n: int) -> dict[str, Any]:
    from celery import group

    from bench.peers.celery_app import noop

    t = time.perf_counter()
    for start in range(0, n, measure.BULK_CHUNK):
        group(noop.s() for _ in range(min(measure.BULK_CHUNK, n - start))).apply_async()
    dt = time.perf_counter() - t
    return {
        "n": n,
        "seconds": dt,
        "jobs_per_s": n / dt,
        "api": "group(...).apply_async(): one message per task",
    }


def drain(n: int) -> dict[str, Any]:
    r = _redis()
    try:
        queued = outstanding(r)
        if queued != n:
            raise RuntimeError(f"expected {n} queued messages, found {queued}")
        return harness.drain(lambda: n - outstanding(r), n, WORKER, PEER)
    finally:
        r.close()


def latency() -> dict[str, Any]:
    from bench.peers.celery_app import probe

    path = harness.latency_file(PEER)
    worker = harness.spawn(WORKER, f"{PEER}-latency", {"BENCH_LAT_FILE": str(path)})
    try:
        return measure.probe_latency(lambda: probe.delay(time.time()), path)
    finally:
        procs.stop(worker)


def main() -> None:
    res = harness.new_result(PEER, "celery", measure.N)
    info = _redis().info("server")
    res["settings"] = {
        "worker": " ".join(WORKER[3:]),
        "concurrency_short": f"1 worker, prefork x{CONCURRENCY}",
        "broker": f"redis-server {info['redis_version']} (--save '' --appendonly no: no persistence)",
        "result_backend": "none (task_ignore_result=True)",
        "acks_late": True,
    }
    harness.run(
        res,
        measure.N,
        harness.Workloads(
            setup=lambda: None,
            clean=clean,
            single=enqueue_single,
            bulk=enqueue_group,
            bulk_key="bulk_group",
            drain=drain,
            latency=latency,
        ),
    )
