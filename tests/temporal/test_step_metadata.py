"""`job_details.metadata` on the Temporal backend: each step's attempt, worker and time since its attempt began,
the same keys the pgboss worker writes (tests/integration/test_pgboss_worker.py)."""

from __future__ import annotations

import time

import pytest

from jobscheduler import current_job
from jobscheduler.models import JobDetail
from jobscheduler.registry import JobHandlerRegistry, RetryPolicy

from .conftest import wait_for_status

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


def test_each_step_records_its_attempt_worker_and_duration_in_metadata(runner, job_name, tenant):
    def timed(job_id, data):
        time.sleep(0.3)
        current_job().step("halfway", "completed", {"at": "halfway"})
        time.sleep(0.2)
        if current_job().attempt == 1:
            raise ConnectionError("first attempt fails")
        return {"attempt": current_job().attempt}

    JobHandlerRegistry.register(
        job_name, timed, retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100)
    )
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wait_for_status(result.job_id, "completed", timeout=60)

    rows = list(JobDetail.objects.filter(job_id=result.job_id).order_by("processed_at"))
    assert [(d.step_name, d.metadata.get("attempt")) for d in rows] == [
        ("execution_started", 1),
        ("halfway", 1),
        ("execution_failed", 1),
        ("execution_retry_scheduled", 1),
        ("execution_started", 2),
        ("halfway", 2),
        ("execution_completed", 2),
    ]
    workers = {d.metadata["workerId"] for d in rows}
    assert len(workers) == 1 and workers.pop().startswith("temporal:")
    by_step = {(d.step_name, d.metadata["attempt"]): d.metadata for d in rows}
    assert "durationMs" not in by_step[("execution_started", 1)]
    for attempt in (1, 2):
        assert 300 <= by_step[("halfway", attempt)]["durationMs"] < 5000
    assert 500 <= by_step[("execution_failed", 1)]["durationMs"] < 5000
    assert 500 <= by_step[("execution_completed", 2)]["durationMs"] < 5000
    completed = next(d for d in rows if d.step_name == "execution_completed")
    assert completed.result == {"attempt": 2, "result": {"attempt": 2}}
