"""Celery's side of the workflow workload: the bench's Celery set-up plus the result back end chords need.

The same broker as bench.peers.celery_app (the bench's Redis, db 0) and the same `task_acks_late`; results go
to db 1 of that Redis through Celery's Redis back end, where a chord's header is counted down and the task
that completes it sends the callback. Unlike the fire-and-forget drain app, every task here stores its result
(1 day expiry, Celery's default): a chord cannot run without them, and the chain's last result is what the
bench waits for. A separate app, so the drain and latency figures of celery_app keep running without a back end.
"""

from __future__ import annotations

from celery import Celery

from bench import config

app = Celery(
    "bench_workflows",
    broker=f"redis://127.0.0.1:{config.redis_port()}/0",
    backend=f"redis://127.0.0.1:{config.redis_port()}/1",
)
app.conf.update(task_acks_late=True, broker_connection_retry_on_startup=True)


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="noop_fanin")
def noop_fanin(results: list[object]) -> int:
    """The chord's callback: how many header results it was handed (the bench checks it)."""
    return len(results)
