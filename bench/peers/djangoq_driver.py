"""django-q2 1.11 with its ORM broker on PostgreSQL: the bench phases.

Enqueue: `async_task("bench.peers.djangoq_tasks.noop")` in autocommit (one INSERT each); no bulk API, so the
second trial is preloaded by a second one-by-one pass. Worker: one `qcluster` with 2 worker processes (plus
its pusher and monitor). Done: rows left in `django_q_ormq` (deleted once the result is saved).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench import measure, procs
from bench.peers import harness

SETTINGS = "bench.peers.djangoq_settings"
DB = "bench_djangoq"
WORKER = [sys.executable, "-m", "django", "qcluster"]
ENV = {"DJANGO_SETTINGS_MODULE": SETTINGS}
TASKS = "bench.peers.djangoq_tasks"


def setup() -> None:
    import django
    from django.core.management import call_command

    harness.recreate_db(DB)
    django.setup()
    call_command("migrate", verbosity=0)


def enqueue_single(n: int) -> dict[str, Any]:
    from django_q.tasks import async_task

    return measure.timed_enqueue(n, lambda: async_task(f"{TASKS}.noop"), "async_task('...noop'), autocommit")


def drain(n: int) -> dict[str, Any]:
    poller = harness.Poller(DB)
    try:
        return harness.drain(
            lambda: n - poller.scalar("SELECT count(*) FROM django_q_ormq"), n, WORKER, "django-q2", ENV
        )
    finally:
        poller.close()


def latency() -> dict[str, Any]:
    from django_q.tasks import async_task

    path = harness.latency_file("django-q2")
    worker = harness.spawn(WORKER, "django-q2-latency", {**ENV, "BENCH_LAT_FILE": str(path)})
    try:
        return measure.probe_latency(lambda: async_task(f"{TASKS}.probe", time.time()), path)
    finally:
        procs.stop(worker)


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    from bench.peers import djangoq_settings as settings

    save_limit = os.environ.get("BENCH_DJQ_SAVE_LIMIT")
    name = "django-q2" if not save_limit else f"django-q2 (save_limit={save_limit})"
    res = harness.new_result(name, "django-q2", measure.N)
    res["settings"] = {
        "worker": "python -m django qcluster",
        "concurrency_short": f"1 cluster, {settings.Q_CLUSTER['workers']} worker procs",
        "Q_CLUSTER": settings.Q_CLUSTER,
        "django": harness.pkg_version("Django"),
        "CONN_MAX_AGE": None,
    }
    harness.run(
        res,
        measure.N,
        harness.Workloads(
            setup=setup,
            clean=lambda: harness.execute(
                DB, "TRUNCATE django_q_ormq, django_q_task, django_q_schedule RESTART IDENTITY"
            ),
            single=enqueue_single,
            bulk=None,
            drain=drain,
            latency=latency,
        ),
    )
