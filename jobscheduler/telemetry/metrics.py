"""The worker's own Prometheus instruments: jobs by queue, type and outcome, run time and queue lag.

They count what *this* process did, so each worker process exposes its own (`runjobworker --metrics-port`) and
Prometheus sums the series across processes; the cluster-wide gauges (waiting, running, live workers) come from
the database instead (`jobscheduler.monitoring.prometheus`), so every web process answers the same.

An outcome is counted once it is recorded (a stale attempt, whose outcome the record refused, is not). Labels are
bounded: the queue, the job type (registered handler names) and the outcome; a tenant label only with
METRICS_TENANT_LABEL. prometheus-client is optional (the `metrics` extra); a process counts once `enable()` (or
`serve()`, which `--metrics-port` calls) ran, and never imports it otherwise.
"""

from __future__ import annotations

import importlib
import threading
import uuid

from ..conf import setting
from ..exceptions import MetricsUnavailable

#: Seconds; from a fast handler to a long report, and a queue lag from "at once" to "an hour behind".
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

_lock = threading.Lock()
_instruments: _Instruments | None = None


class _Instruments:
    """The process's instruments, in the default registry; whether they carry a tenant label is read from
    METRICS_TENANT_LABEL when they are made, so a process's series keep one shape."""

    def __init__(self) -> None:
        prometheus_client = importlib.import_module("prometheus_client")
        self.with_tenant = bool(setting("METRICS_TENANT_LABEL"))
        labels = ("queue", "type", "tenant") if self.with_tenant else ("queue", "type")
        self.jobs = prometheus_client.Counter(
            "jobscheduler_jobs",
            "Attempts ended and recorded by this worker, by outcome (completed, failed, retry, cancelled, released).",
            [*labels, "outcome"],
        )
        self.duration = prometheus_client.Histogram(
            "jobscheduler_job_duration_seconds",
            "Run time of an attempt, from its start on this worker to its end.",
            [*labels, "outcome"],
            buckets=DURATION_BUCKETS,
        )
        self.lag = prometheus_client.Histogram(
            "jobscheduler_queue_lag_seconds",
            "Time from an attempt's scheduled run time to its start on this worker.",
            labels,
            buckets=LAG_BUCKETS,
        )
        self.rescued = prometheus_client.Counter(
            "jobscheduler_rescued_leases",
            "Expired leases (a lost or stalled worker) this worker's maintenance rescued, by what became of the job.",
            ["outcome"],
        )

    def values(self, queue: str, job_type: str, tenant: uuid.UUID | str | None) -> tuple[str, ...]:
        return (queue, job_type, str(tenant or "")) if self.with_tenant else (queue, job_type)


def enable() -> None:
    """Count in this process, into prometheus-client's default registry (`serve()` does it; call it yourself
    to expose that registry your own way). Until then every observation is a no-op, so a process that exposes
    no metrics never imports prometheus-client (half a second of start-up)."""
    global _instruments
    with _lock:
        if _instruments is None:
            try:
                _instruments = _Instruments()
            except ImportError:
                raise MetricsUnavailable() from None


def observe_start(*, queue: str, job_type: str, tenant: uuid.UUID | str | None, lag_seconds: float) -> None:
    instruments = _instruments
    if instruments is not None:
        instruments.lag.labels(*instruments.values(queue, job_type, tenant)).observe(max(lag_seconds, 0.0))


def observe_end(
    *, queue: str, job_type: str, tenant: uuid.UUID | str | None, outcome: str, duration_seconds: float
) -> None:
    instruments = _instruments
    if instruments is not None:
        values = (*instruments.values(queue, job_type, tenant), str(outcome))
        instruments.jobs.labels(*values).inc()
        instruments.duration.labels(*values).observe(max(duration_seconds, 0.0))


def observe_rescued(outcome: str) -> None:
    instruments = _instruments
    if instruments is not None:
        instruments.rescued.labels(str(outcome)).inc()


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Expose this process's metrics on http://addr:port/metrics (a daemon thread)."""
    enable()  # the families exist from the first scrape on
    importlib.import_module("prometheus_client").start_http_server(port, addr=addr)
