"""Celery's side of the bench: the app (Redis broker, no result backend, acks_late) and its two tasks."""

from __future__ import annotations

from celery import Celery

from bench import config, measure

app = Celery("bench", broker=f"redis://127.0.0.1:{config.redis_port()}/0")
app.conf.update(
    # Fire-and-forget, the most common Celery set-up: no result backend.
    task_ignore_result=True,
    # Acknowledge after the handler ran, as the PostgreSQL queues mark a job done after it ran (at-least-once);
    # it also makes "done" visible: the message leaves the `unacked` hash only then.
    task_acks_late=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="probe")
def probe(t0: float) -> None:
    measure.record_start(t0)
