"""Cluster-wide Prometheus gauges, read from the database at scrape time.

The view a site mounts (`/ops/jobs/metrics/`) reports the state every process shares: jobs waiting and running
per pgboss queue, the age of each queue's oldest due job, and live workers per backend. Being read from the
database, the figures are the same whichever web process answers, and never double count when Prometheus
scrapes several. The per-attempt counters and histograms are the workers' own (`runjobworker --metrics-port`,
`jobscheduler.telemetry.metrics`): this view does not repeat them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from ..states import RunnerType
from . import queues


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        waiting = GaugeMetricFamily(
            "jobscheduler_queue_waiting_jobs",
            "Due jobs no worker has claimed yet, per queue.",
            labels=["queue"],
        )
        running = GaugeMetricFamily(
            "jobscheduler_queue_running_jobs", "Jobs leased to a worker now, per queue.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "jobscheduler_queue_oldest_waiting_seconds",
            "How long the oldest due, unclaimed job of the queue has waited since its scheduled run time.",
            labels=["queue"],
        )
        for queue in queues.pgboss_queues():
            waiting.add_metric([queue.name], queue.waiting)
            running.add_metric([queue.name], queue.running)
            oldest.add_metric([queue.name], queue.oldest_waiting_seconds)
        workers = GaugeMetricFamily(
            "jobscheduler_live_workers",
            "Workers heartbeating within WORKER_EXPIRY_SECONDS, per backend.",
            labels=["backend"],
        )
        live = Counter(str(w.backend) for w in queues.live_workers())
        for backend in RunnerType:
            workers.add_metric([str(backend)], live[str(backend)])
        yield from (waiting, running, oldest, workers)


def registry() -> CollectorRegistry:
    """A registry of the database gauges only (not this web process's own metrics)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(DatabaseCollector())
    return found
