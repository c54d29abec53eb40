"""The overview's numbers: counts by status, success rate, recent failures, per-runner counts, the chart.

Each figure comes from one aggregate query that the `jobs` indexes answer without reading the whole table:
counts by status are an index-only GROUP BY over `(tenant, status, created_at)`, and the windowed figures
read only the rows created in a bounded look-back. The result is cached per tenant for a few seconds, so a
dashboard left open (or many viewers of one tenant) costs one set of queries per TTL, not one per refresh.

Windows are measured by when a job finished (`updated_at`, written together with `completedAt` when a job
reaches a final state), over the jobs created within `LOOKBACK` before the window starts: a job that sat
queued for longer than that before finishing is left out of the windowed figures.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from ..models import JobStatus

#: Seconds an overview aggregate is reused before the database is asked again.
CACHE_SECONDS = 5
#: How far before a window's start a job may have been created and still be counted in that window.
LOOKBACK = timedelta(days=1)

#: The statuses the overview shows, in display order; `active` (a seed value) is counted as processing.
DISPLAY_STATUSES = (
    JobStatus.PROCESSING,
    JobStatus.QUEUED,
    JobStatus.PENDING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
LIVE = ("pending", "queued", "processing", "active")

CHART_RANGES = {
    "hour": (timedelta(hours=1), "minute", timedelta(minutes=1)),
    "day": (timedelta(days=1), "hour", timedelta(hours=1)),
}


@dataclass(frozen=True, slots=True)
class RunnerCounts:
    runner_type: str
    live: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class ChartBucket:
    start: datetime
    completed: int
    failed: int


@dataclass(frozen=True, slots=True)
class Overview:
    counts: dict[str, int]
    failed_24h: int
    completed_24h: int
    runners: list[RunnerCounts]
    chart: list[ChartBucket]
    chart_range: str
    computed_at: datetime = field(default_factory=timezone.now)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def success_rate(self) -> float | None:
        """Completed over finished-and-not-cancelled, all time; None before anything finished."""
        done = self.counts.get("completed", 0) + self.counts.get("failed", 0)
        return None if done == 0 else 100.0 * self.counts.get("completed", 0) / done

    @property
    def success_rate_24h(self) -> float | None:
        done = self.completed_24h + self.failed_24h
        return None if done == 0 else 100.0 * self.completed_24h / done


def overview(tenant: uuid.UUID, chart_range: str = "hour") -> Overview:
    """The overview of one tenant, from the cache when it is at most CACHE_SECONDS old."""
    if chart_range not in CHART_RANGES:
        chart_range = "hour"
    key = f"jobscheduler:overview:{tenant}:{chart_range}"
    cached = cache.get(key)
    if cached is None:
        cached = compute_overview(tenant, chart_range)
        cache.set(key, cached, CACHE_SECONDS)
    return cached


def compute_overview(tenant: uuid.UUID, chart_range: str) -> Overview:
    now = timezone.now()
    since_24h = now - timedelta(hours=24)
    recent, runners = _recent_by_runner(tenant, since_24h)
    return Overview(
        counts=status_counts(tenant),
        failed_24h=recent.get("failed", 0),
        completed_24h=recent.get("completed", 0),
        runners=runners,
        chart=chart_buckets(tenant, chart_range, now),
        chart_range=chart_range,
        computed_at=now,
    )


def status_counts(tenant: uuid.UUID) -> dict[str, int]:
    """Jobs of the tenant by display status (an index-only scan grouped by status)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT status::text, count(*) FROM jobs WHERE tenant = %s GROUP BY status", [tenant])
        rows = cursor.fetchall()
    counts = dict.fromkeys(DISPLAY_STATUSES, 0)
    for status, count in rows:
        key = JobStatus.PROCESSING if status == JobStatus.ACTIVE else status
        counts[key] = counts.get(key, 0) + count
    return {str(k): v for k, v in counts.items()}


def _recent_by_runner(tenant: uuid.UUID, since: datetime) -> tuple[dict[str, int], list[RunnerCounts]]:
    """Per runner: live jobs now, and jobs finished since `since`; plus the tenant-wide finished totals."""
    sql = """
        SELECT runner_type,
               count(*) FILTER (WHERE status::text = ANY(%(live)s)),
               count(*) FILTER (WHERE status = 'completed' AND updated_at >= %(since)s),
               count(*) FILTER (WHERE status = 'failed' AND updated_at >= %(since)s),
               count(*) FILTER (WHERE status = 'cancelled' AND updated_at >= %(since)s)
        FROM jobs
        WHERE tenant = %(tenant)s
          AND (status::text = ANY(%(live)s) OR created_at >= %(lookback)s)
        GROUP BY runner_type
        ORDER BY runner_type
    """
    params = {"tenant": tenant, "live": list(LIVE), "since": since, "lookback": since - LOOKBACK}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        runners = [RunnerCounts(*row) for row in cursor.fetchall()]
    totals = {
        "completed": sum(r.completed for r in runners),
        "failed": sum(r.failed for r in runners),
    }
    return totals, runners


def chart_buckets(tenant: uuid.UUID, chart_range: str, now: datetime) -> list[ChartBucket]:
    """Completed and failed jobs per minute (last hour) or per hour (last day), empty buckets included."""
    span, unit, step = CHART_RANGES[chart_range]
    end = _truncate(now, unit)
    start = end - span + step
    sql = """
        SELECT date_trunc(%(unit)s, updated_at, 'UTC') AS bucket,
               count(*) FILTER (WHERE status = 'completed'),
               count(*) FILTER (WHERE status = 'failed')
        FROM jobs
        WHERE tenant = %(tenant)s AND status IN ('completed', 'failed')
          AND created_at >= %(lookback)s AND updated_at >= %(start)s
        GROUP BY 1
    """
    params = {"unit": unit, "tenant": tenant, "start": start, "lookback": start - LOOKBACK}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = {bucket: (done, failed) for bucket, done, failed in cursor.fetchall()}
    buckets = []
    moment = start
    while moment <= end:
        done, failed = found.get(moment, (0, 0))
        buckets.append(ChartBucket(start=moment, completed=done, failed=failed))
        moment += step
    return buckets


def _truncate(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return moment.replace(minute=0) if unit == "hour" else moment
