"""django-tasks' task definitions (enqueued by the driver, run by db_worker)."""

from __future__ import annotations

from django_tasks import task

from bench import measure


@task()
def noop() -> None:
    return None


@task()
def probe(t0: float) -> None:
    measure.record_start(t0)
