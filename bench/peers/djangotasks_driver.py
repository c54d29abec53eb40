"""django-tasks 0.12 + django-tasks-db 0.13 (the database backend): the bench phases.

Enqueue: `noop.enqueue()` in autocommit (one INSERT); no bulk API. Worker: one `db_worker` process, which runs
one task at a time (it has no concurrency option) and sleeps --interval (1 s, the default) when the queue is
empty. Done: `status = 'SUCCESSFUL'`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench import measure, procs
from bench.peers import harness

SETTINGS = "bench.peers.djangotasks_settings"
DB = "bench_djangotasks"
INTERVAL = os.environ.get("BENCH_DJT_INTERVAL", "1")
WORKER = [
    sys.executable,
    "-m",
    "django",
    "db_worker",
    f"--interval={INTERVAL}",
    "--no-reload",
    "--verbosity=0",
]
ENV = {"DJANGO_SETTINGS_MODULE": SETTINGS}


def _table() -> str:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult._meta.db_table


def setup() -> None:
    import django
    from django.core.management import call_command

    harness.recreate_db(DB)
    django.setup()
    call_command("migrate", verbosity=0)


def enqueue_single(n: int) -> dict[str, Any]:
    from bench.peers.djangotasks_tasks import noop

    return measure.timed_enqueue(n, noop.enqueue, "noop.enqueue(), autocommit")


def drain(n: int) -> dict[str, Any]:
    poller = harness.Poller(DB)
    try:
        done = f"SELECT count(*) FROM {_table()} WHERE status = 'SUCCESSFUL'"
        return harness.drain(lambda: poller.scalar(done), n, WORKER, "django-tasks", ENV)
    finally:
        poller.close()


def latency() -> dict[str, Any]:
    from bench.peers.djangotasks_tasks import probe

    path = harness.latency_file("django-tasks")
    worker = harness.spawn(WORKER, "django-tasks-latency", {**ENV, "BENCH_LAT_FILE": str(path)})
    try:
        return measure.probe_latency(lambda: probe.enqueue(time.time()), path)
    finally:
        procs.stop(worker)


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    res = harness.new_result("django-tasks", "django-tasks", measure.N)
    res["settings"] = {
        "worker": "python -m django " + " ".join(WORKER[3:]),
        "concurrency_short": "1 proc, 1 task at a time",
        "backend": f"django_tasks_db.DatabaseBackend (django-tasks-db {harness.pkg_version('django-tasks-db')})",
        "django": harness.pkg_version("Django"),
        "CONN_MAX_AGE": None,
    }
    harness.run(
        res,
        measure.N,
        harness.Workloads(
            setup=setup,
            clean=lambda: harness.execute(DB, f"TRUNCATE {_table()}"),
            single=enqueue_single,
            bulk=None,
            drain=drain,
            latency=latency,
        ),
    )
