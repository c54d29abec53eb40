"""Cluster-wide queue state read from the database, shared by the health report and the Prometheus gauges.

Everything here is one query against the tables every worker and web process share, so any process answers
the same: nothing is kept in memory between calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection

from ..conf import setting
from ..states import RunnerType

_BACKLOG_SQL = """
SELECT $KEY,
       count(*) FILTER (WHERE lease_token IS NULL AND run_at <= now()),
       count(*) FILTER (WHERE lease_token IS NOT NULL),
       coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE lease_token IS NULL AND run_at <= now())),
                0)
FROM jobscheduler_queue
GROUP BY $KEY
ORDER BY $KEY
"""

#: Per job name (what a worker's --jobs serves, so what the health report checks for a live worker): ready
#: jobs not yet claimed, leased jobs, and the age of the oldest ready one (scheduled run time to now, so a
#: delayed job only counts once it is due).
PGBOSS_JOB_NAMES_SQL = _BACKLOG_SQL.replace("$KEY", "name")

#: The same per queue (the job's queue, docs/queues.md): the Prometheus gauges' `queue` label.
PGBOSS_QUEUES_SQL = _BACKLOG_SQL.replace("$KEY", "queue")

#: Workers heartbeating within WORKER_EXPIRY_SECONDS; `job_names` empty means "every registered handler".
LIVE_WORKERS_SQL = """
SELECT id, backend, host, job_names
FROM jobscheduler_workers
WHERE heartbeat_at >= now() - make_interval(secs => %(expiry)s)
ORDER BY id
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueState:
    name: str
    waiting: int
    running: int
    oldest_waiting_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveWorker:
    id: str
    backend: RunnerType
    host: str
    #: Job names it serves; empty: all of them.
    job_names: tuple[str, ...]

    def serves(self, name: str) -> bool:
        return not self.job_names or name in self.job_names


def pgboss_job_names() -> list[QueueState]:
    """The backlog per job name (see PGBOSS_JOB_NAMES_SQL)."""
    return _backlog(PGBOSS_JOB_NAMES_SQL)


def pgboss_queues() -> list[QueueState]:
    """The backlog per queue (see PGBOSS_QUEUES_SQL)."""
    return _backlog(PGBOSS_QUEUES_SQL)


def _backlog(statement: str) -> list[QueueState]:
    with connection.cursor() as cursor:
        cursor.execute(statement)
        return [
            QueueState(name=name, waiting=waiting, running=running, oldest_waiting_seconds=float(oldest))
            for name, waiting, running, oldest in cursor.fetchall()
        ]


def live_workers() -> list[LiveWorker]:
    """Django's cursor hands jsonb back as its text (its JSONField parses it), so `job_names` is parsed here."""
    with connection.cursor() as cursor:
        cursor.execute(LIVE_WORKERS_SQL, {"expiry": float(setting("WORKER_EXPIRY_SECONDS"))})
        return [
            LiveWorker(
                id=wid,
                backend=RunnerType(backend),
                host=host,
                job_names=tuple(json.loads(names) if isinstance(names, str) else names or ()),
            )
            for wid, backend, host, names in cursor.fetchall()
        ]
