"""The Temporal worker's Prometheus instruments, read from the in-process worker's registry after known jobs."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from jobscheduler.registry import JobHandlerRegistry, RetryPolicy
from jobscheduler.telemetry import metrics

from .conftest import wait_for_status

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_outcomes_run_time_and_lag_are_counted(runner, job_name, tenant):
    metrics.enable()  # as --metrics-port does in a worker process
    ok, failing = f"{job_name}.ok", f"{job_name}.fail"
    JobHandlerRegistry.register(ok, lambda job_id, data: time.sleep(0.3))

    def fail(job_id, data):
        raise RuntimeError("no")

    JobHandlerRegistry.register(
        failing, fail, retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100)
    )
    done = [runner.schedule_job(ok, {}, tenant_id=tenant).job_id for _ in range(2)]
    failed = runner.schedule_job(failing, {}, tenant_id=tenant).job_id
    for job_id in done:
        wait_for_status(job_id, "completed", timeout=60)
    wait_for_status(failed, "failed", timeout=60)

    def labels(job_type: str, outcome: str | None = None) -> dict[str, str]:
        found = {"queue": "default", "type": job_type}  # the job's queue, not its Temporal task queue
        return found | ({"outcome": outcome} if outcome else {})

    assert sample("jobscheduler_jobs_total", **labels(ok, "completed")) == 2
    assert sample("jobscheduler_jobs_total", **labels(failing, "retry")) == 1
    assert sample("jobscheduler_jobs_total", **labels(failing, "failed")) == 1
    assert 0.6 <= sample("jobscheduler_job_duration_seconds_sum", **labels(ok, "completed")) < 10
    assert sample("jobscheduler_job_duration_seconds_count", **labels(ok, "completed")) == 2
    assert sample("jobscheduler_queue_lag_seconds_count", **labels(ok)) == 2
    assert sample("jobscheduler_queue_lag_seconds_count", **labels(failing)) == 2
