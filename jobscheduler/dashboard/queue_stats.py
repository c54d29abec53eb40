"""The Queues page's figures, per queue and per job type within it, for one tenant.

The live settings (limits, paused) are the queue's, shared by every tenant; every count is the viewer's tenant
only. Three reads, cached per tenant for DASHBOARD_CACHE_SECONDS like the overview:

* pgboss jobs waiting and running, from the queue table (live jobs only, so it stays small however long the
  history);
* Temporal jobs waiting and running, from the tenant's live `jobs` rows (Temporal holds its queue itself);
* jobs finished in the last hour with their p50 / p95 run time (the last attempt's, `completedAt` minus
  `lastStartedAt`), from the `jobs` rows created since an hour plus `metrics.LOOKBACK` ago.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from ..conf import setting
from ..queues import QueueState
from .metrics import LOOKBACK

WINDOW = timedelta(hours=1)

LIVE_PGBOSS_SQL = """
SELECT queue, name,
       count(*) FILTER (WHERE lease_token IS NULL AND run_at <= now()),
       count(*) FILTER (WHERE lease_token IS NULL AND run_at > now()),
       count(*) FILTER (WHERE lease_token IS NOT NULL),
       min(run_at) FILTER (WHERE lease_token IS NULL AND run_at <= now())
FROM jobscheduler_queue WHERE tenant = %(tenant)s
GROUP BY 1, 2
"""

LIVE_TEMPORAL_SQL = """
SELECT coalesce(metadata ->> 'queue', 'default'), type,
       count(*) FILTER (WHERE status IN ('pending', 'queued')), 0,
       count(*) FILTER (WHERE status IN ('processing', 'active')),
       min(created_at) FILTER (WHERE status IN ('pending', 'queued'))
FROM jobs
WHERE tenant = %(tenant)s AND runner_type = 'temporal' AND status IN ('pending', 'queued', 'processing', 'active')
GROUP BY 1, 2
"""

FINISHED_SQL = """
SELECT queue, type, count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed'),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds), percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds)
FROM (
    SELECT coalesce(metadata ->> 'queue', 'default') AS queue, type, status::text AS status,
           extract(epoch FROM (metadata ->> 'completedAt')::timestamptz
                              - coalesce(metadata ->> 'lastStartedAt', metadata ->> 'startedAt')::timestamptz)
               AS seconds
    FROM jobs
    WHERE tenant = %(tenant)s AND status IN ('completed', 'failed')
      AND created_at >= %(lookback)s AND updated_at >= %(since)s
) finished
GROUP BY GROUPING SETS ((queue), (queue, type))
"""


@dataclass(slots=True)
class Figures:
    """What one queue (or one job type in it) shows."""

    waiting: int = 0
    delayed: int = 0
    running: int = 0
    oldest_waiting_since: datetime | None = None
    completed: int = 0
    failed: int = 0
    p50_seconds: float | None = None
    p95_seconds: float | None = None

    def add_live(self, waiting: int, delayed: int, running: int, oldest: datetime | None) -> None:
        self.waiting += waiting
        self.delayed += delayed
        self.running += running
        if oldest is not None and (self.oldest_waiting_since is None or oldest < self.oldest_waiting_since):
            self.oldest_waiting_since = oldest


@dataclass(slots=True)
class QueueFigures:
    name: str
    totals: Figures = field(default_factory=Figures)
    types: dict[str, Figures] = field(default_factory=dict)
    #: Whether any of these jobs ran (or waits) on Temporal, whose queues differ (see docs/temporal.md).
    on_temporal: bool = False


@dataclass(frozen=True, slots=True)
class QueuesPage:
    queues: dict[str, QueueFigures]
    computed_at: datetime


def queues_page(tenant: uuid.UUID) -> QueuesPage:
    key = f"jobscheduler:queues:{tenant}"
    cached = cache.get(key)
    if cached is None:
        cached = compute(tenant, timezone.now())
        cache.set(key, cached, setting("DASHBOARD_CACHE_SECONDS"))
    return cached


def compute(tenant: uuid.UUID, now: datetime) -> QueuesPage:
    queues: dict[str, QueueFigures] = {}

    def figures(queue: str, job_type: str | None) -> Figures:
        row = queues.setdefault(queue, QueueFigures(queue))
        return row.totals if job_type is None else row.types.setdefault(job_type, Figures())

    params = {"tenant": tenant, "since": now - WINDOW, "lookback": now - WINDOW - LOOKBACK}
    for sql, on_temporal in ((LIVE_PGBOSS_SQL, False), (LIVE_TEMPORAL_SQL, True)):
        for queue, job_type, waiting, delayed, running, oldest in _fetch(sql, params):
            for target in (figures(queue, None), figures(queue, job_type)):
                target.add_live(waiting, delayed, running, oldest)
            queues[queue].on_temporal |= on_temporal
    for queue, job_type, completed, failed, p50, p95 in _fetch(FINISHED_SQL, params):
        target = figures(queue, job_type)
        target.completed, target.failed, target.p50_seconds, target.p95_seconds = completed, failed, p50, p95
    return QueuesPage(queues=queues, computed_at=now)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """A queue as the page lists it: its live settings and the tenant's figures."""

    state: QueueState
    figures: QueueFigures

    @property
    def name(self) -> str:
        return self.state.name


def rows(states: list[QueueState], page: QueuesPage) -> list[QueueRow]:
    """Every queue with settings or with jobs of the tenant, by name."""
    by_name = {state.name: state for state in states}
    names = sorted(set(by_name) | set(page.queues))
    return [
        QueueRow(by_name.get(name) or QueueState(name=name), page.queues.get(name) or QueueFigures(name))
        for name in names
    ]


def _fetch(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]
