"""Celery 5.7 on Redis (no persistence, no result backend, acks_late): the bench phases.

Enqueue: `noop.delay()`; "bulk": `group(noop.s() x1000).apply_async()`, which still publishes one message per
task (Celery has no bulk publish), reported under its own key. Worker: one `celery worker`, prefork pool with 2
children (the core count, Celery's default). Done: the `celery` list and the `unacked` hash both empty.

Workflows (bench/workflow_bench.py defines them): `chord(group(noop.s() x W), noop_fanin.s())` and
`chain(noop.si() x C)` on the app of celery_workflow_app (same broker, plus the Redis result back end a chord
needs), one warmed-up worker like the drain's; timed from `apply_async()` until the poll that sees the last
task's result ready.
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
#: The same worker on the workflow app.
WORKFLOW_WORKER = [*WORKER[:4], "bench.peers.celery_workflow_app", *WORKER[5:]]


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


def clean_results() -> None:
    """The workflow app's result back end (db 1)."""
    import redis

    r = redis.Redis(host="127.0.0.1", port=config.redis_port(), db=1)
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


def workflows() -> dict[str, Any]:
    """The fan-out (chord) and the chain, on one worker warmed up by one task."""
    from celery import chain, chord, group

    from bench.peers.celery_workflow_app import noop, noop_fanin

    clean()
    clean_results()
    out: dict[str, Any] = {}
    worker = harness.spawn(WORKFLOW_WORKER, f"{PEER}-workflow")
    try:
        _warm_up(noop, worker)
        width, length = measure.WF_WIDTH, measure.WF_CHAIN
        if width:
            canvas = chord(group([noop.s() for _ in range(width)]), noop_fanin.s())
            res, out["fan_out"] = _timed(canvas, width + 1, worker, "celery chord")
            handed = res.result  # read from the back end, as ready() was (get() would subscribe to it)
            out["fan_out"] |= {
                "width": width,
                "check": {"ok": handed == width, "fan_in_results": handed, "fan_in_expected": width},
            }
            _say(out["fan_out"])
        if length:
            canvas = chain([noop.si() for _ in range(length)])
            res, out["chain"] = _timed(canvas, length, worker, "celery chain")
            states = []
            node = res
            while node is not None:
                states.append(node.state)
                node = node.parent
            succeeded = states.count("SUCCESS")
            out["chain"] |= {
                "length": length,
                "check": {
                    "ok": succeeded == length == len(states),
                    "steps": len(states),
                    "completed": succeeded,
                },
            }
            _say(out["chain"])
    finally:
        procs.stop(worker)
        clean()
        clean_results()
    return out


def _warm_up(noop: Any, worker: Any) -> None:
    """One task through the worker and its result back, then 1 s of quiet."""
    deadline = time.monotonic() + measure.STARTUP_TIMEOUT
    res = noop.delay()
    while not res.ready():
        _alive(worker)
        measure.check_deadline(deadline, "celery workflow worker warm-up")
        time.sleep(0.1)
    time.sleep(1.0)


def _timed(canvas: Any, steps: int, worker: Any, what: str) -> tuple[Any, dict[str, Any]]:
    t_start = time.monotonic()
    res = canvas.apply_async()
    scheduled = time.monotonic() - t_start

    def done() -> bool:
        _alive(worker)
        return res.ready()

    out = measure.wait_workflow(done, steps, measure.WF_TIMEOUT, what, t_start=t_start)
    return res, out | {"schedule_call_s": scheduled}


def _alive(worker: Any) -> None:
    if worker.poll() is not None:
        raise RuntimeError(f"the celery worker exited (code {worker.returncode})")


def _say(res: dict[str, Any]) -> None:
    rate = res["steps_per_s"]
    rate_text = "timed out" if rate is None else f"{rate:,.1f} steps/s"
    print(
        f"  {res['what']}: {res['steps']} steps in {res['elapsed_s']:.2f}s = {rate_text}; check {res['check']}",
        file=sys.stderr,
        flush=True,
    )


def main() -> None:
    res = harness.new_result(PEER, "celery", measure.N)
    info = _redis().info("server")
    res["settings"] = {
        "worker": " ".join(WORKER[3:]),
        "concurrency_short": f"1 worker, prefork x{CONCURRENCY}",
        "broker": f"redis-server {info['redis_version']} (--save '' --appendonly no: no persistence)",
        "result_backend": "none (task_ignore_result=True)",
        "acks_late": True,
        "workflow_result_backend": "the same Redis, db 1 (celery_workflow_app: chords need a back end)",
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
            workflow=workflows,
        ),
    )
