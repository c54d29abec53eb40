"""One-off jobs on the Temporal backend, recorded in jobs/job_details the way the pgboss backend records them."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobscheduler import current_job
from jobscheduler.exceptions import InvalidJobData, JobHandlerNotFound, TenantRequired
from jobscheduler.models import Job, JobDetail
from jobscheduler.registry import JobHandlerRegistry, RetryPolicy

from .conftest import steps, wait_for_status, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


def test_immediate_job_runs_and_is_recorded(runner, job_name, tenant):
    seen = []
    JobHandlerRegistry.register(job_name, lambda job_id, data: seen.append((job_id, data)) or {"ok": 1})

    result = runner.schedule_job(job_name, {"tenantId": str(tenant), "n": 1}, metadata={"source": "test"})

    job = Job.objects.get(job_id=result.job_id)
    assert job.runner_type == "temporal"
    assert job.external_id == result.external_id == f"job-{result.job_id}"
    assert job.external_run_id
    job = wait_for_status(result.job_id, "completed")
    assert seen == [(result.job_id, {"tenantId": str(tenant), "n": 1})]
    meta = job.metadata
    assert meta["data"] == {"tenantId": str(tenant), "n": 1}
    assert meta["source"] == "test"
    assert meta["attempts"] == 1 and meta["maxAttempts"] == 3 and meta["progress"] == 100
    assert meta["startedAt"] and meta["completedAt"] and meta["workerId"].startswith("temporal:")
    assert steps(result.job_id) == [("execution_started", "processing"), ("execution_completed", "completed")]
    done = JobDetail.objects.get(job_id=result.job_id, step_name="execution_completed")
    assert done.result == {"attempt": 1, "result": {"ok": 1}} and done.retry_count == 0
    status = runner.get_job_status(result.job_id, tenant)
    assert status.status == "completed" and status.duration is not None and status.runner_type == "temporal"


def test_delayed_job_starts_after_its_delay(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    run_at = timezone.now() + timedelta(seconds=2)

    result = runner.schedule_job_at(job_name, {"tenantId": str(tenant)}, run_at)

    time.sleep(1)
    assert Job.objects.get(job_id=result.job_id).status == "queued"
    job = wait_for_status(result.job_id, "completed")
    assert job.meta["startedAt"] >= run_at.isoformat()


def test_retries_follow_the_handler_policy(runner, job_name, tenant):
    calls = []

    def flaky(job_id, data):
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)}")
        return "third time"

    policy = RetryPolicy(
        max_attempts=3, initial_interval_ms=300, backoff_coefficient=2.0, max_interval_ms=1000
    )
    JobHandlerRegistry.register(job_name, flaky, retry=policy)

    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})

    job = wait_for_status(result.job_id, "completed")
    assert job.meta["attempts"] == 3
    assert steps(result.job_id) == [
        ("execution_started", "processing"),
        ("execution_failed", "failed"),
        ("execution_retry_scheduled", "queued"),
        ("execution_started", "processing"),
        ("execution_failed", "failed"),
        ("execution_retry_scheduled", "queued"),
        ("execution_started", "processing"),
        ("execution_completed", "completed"),
    ]
    assert calls[1] - calls[0] >= 0.25 and calls[2] - calls[1] >= 0.55  # 300 ms, then 600 ms
    failed = JobDetail.objects.filter(job_id=result.job_id, step_name="execution_failed").order_by(
        "retry_count"
    )
    assert [d.result["error"] for d in failed] == ["ConnectionError: try 1", "ConnectionError: try 2"]
    assert failed[0].result["errorType"] == "ConnectionError" and "Traceback" in failed[0].result["traceback"]


def test_exhausted_and_non_retryable_failures_fail_the_job(runner, job_name, tenant):
    def broken(job_id, data):
        raise ValueError(data["why"])

    JobHandlerRegistry.register(
        job_name,
        broken,
        retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, non_retryable_errors=["KeyError"]),
    )
    exhausted = runner.schedule_job(job_name, {"tenantId": str(tenant), "why": "bad"})
    no_retry = runner.schedule_job(job_name, {"tenantId": str(tenant)})  # KeyError: never retried

    job = wait_for_status(exhausted.job_id, "failed")
    assert job.meta["attempts"] == 2 and job.meta["error"] == "ValueError: bad"
    assert job.meta["errorType"] == "ValueError"
    assert [s for s, _ in steps(exhausted.job_id)].count("execution_started") == 2
    job = wait_for_status(no_retry.job_id, "failed")
    assert job.meta["attempts"] == 1 and job.meta["errorType"] == "KeyError"
    assert steps(no_retry.job_id) == [("execution_started", "processing"), ("execution_failed", "failed")]
    status = runner.get_job_status(no_retry.job_id, tenant)
    assert status.status == "failed" and status.error == "KeyError: 'why'"


def test_timeout_fires(runner, job_name, tenant):
    JobHandlerRegistry.register(
        job_name, lambda job_id, data: time.sleep(3), timeout_ms=500, retry=RetryPolicy(max_attempts=1)
    )

    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})

    job = wait_for_status(result.job_id, "failed", timeout=10)
    assert job.meta["errorType"] == "JobTimeout"
    assert "500 ms" in job.meta["error"]
    assert steps(result.job_id) == [("execution_started", "processing"), ("execution_failed", "failed")]


def test_async_handler_reports_progress_and_steps(runner, job_name, tenant):
    async def handler(job_id, data):
        job = current_job()
        job.progress(40, "halfway")
        job.step("fetch", result={"rows": 3})
        return {"rows": 3}

    JobHandlerRegistry.register(job_name, handler)

    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})

    job = wait_for_status(result.job_id, "completed")
    assert job.meta["progressMessage"] == "halfway"
    assert steps(result.job_id) == [
        ("execution_started", "processing"),
        ("fetch", "completed"),
        ("execution_completed", "completed"),
    ]


def test_cancel_reaches_a_running_handler(runner, job_name, tenant):
    saw_cancel = []

    def patient(job_id, data):
        job = current_job()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if job.is_cancelled:
                saw_cancel.append(True)
                job.raise_if_cancelled()
            time.sleep(0.05)

    JobHandlerRegistry.register(job_name, patient)
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wait_for_status(result.job_id, "processing")

    assert runner.cancel_job(result.job_id, tenant, reason="not needed", cancelled_by="tester") is True

    job = wait_for_status(result.job_id, "cancelled", timeout=10)
    assert saw_cancel == [True]
    assert job.meta["cancelReason"] and job.meta["completedAt"]
    assert steps(result.job_id)[-1] == ("execution_cancelled", "cancelled")
    assert runner.cancel_job(result.job_id, tenant) is False  # already final


def test_cancel_of_a_delayed_job_is_immediate(runner, job_name, tenant):
    ran = []
    JobHandlerRegistry.register(job_name, lambda job_id, data: ran.append(job_id))
    result = runner.schedule_job_at(
        job_name, {"tenantId": str(tenant)}, timezone.now() + timedelta(seconds=2)
    )

    assert runner.cancel_job(result.job_id, tenant) is True

    assert runner.get_job_status(result.job_id, tenant).status == "cancelled"
    time.sleep(3)
    assert ran == []
    assert steps(result.job_id) == [("execution_cancelled", "cancelled")]


def test_singleton_key_gives_one_workflow(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: time.sleep(1))
    data = {"tenantId": str(tenant)}

    first = runner.schedule_job(job_name, data, singleton_key="nightly")
    second = runner.schedule_job(job_name, data, singleton_key="nightly")

    assert first == second
    assert first.external_id == f"job-{tenant}-singleton-nightly"
    wait_for_status(first.job_id, "completed")
    third = runner.schedule_job(job_name, data, singleton_key="nightly")  # the id is free again once closed
    assert third.job_id != first.job_id
    wait_for_status(third.job_id, "completed")
    assert Job.objects.filter(type=job_name).count() == 2


def test_inside_a_transaction_the_start_waits_for_commit(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    with transaction.atomic():
        kept = runner.schedule_job(job_name, {"tenantId": str(tenant)})
        assert Job.objects.get(job_id=kept.job_id).status == "pending"
    wait_for_status(kept.job_id, "completed")

    with pytest.raises(RuntimeError), transaction.atomic():
        dropped = runner.schedule_job(job_name, {"tenantId": str(tenant)})
        raise RuntimeError("roll back")
    assert not Job.objects.filter(job_id=dropped.job_id).exists()


def test_a_start_writes_the_same_record_straight_through_libpq_and_through_djangos_cursor(
    runner, job_name, tenant
):
    """In autocommit the start's two writes (pending row, then queued with the run id) go straight through libpq,
    prepared in the session; with a query logger they go through Django's cursor, where the logger sees them."""
    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    direct = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    with connections["default"].cursor() as cur:
        cur.execute(
            "SELECT name FROM pg_prepared_statements WHERE name LIKE 'jobscheduler_record_%%' ORDER BY name"
        )
        assert [name for (name,) in cur.fetchall()] == [
            "jobscheduler_record_created",
            "jobscheduler_record_queued",
        ]
    with CaptureQueriesContext(connections["default"]) as logged:
        wrapped = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    assert any("INSERT INTO jobs" in q["sql"] for q in logged.captured_queries)
    assert any("UPDATE jobs SET status" in q["sql"] for q in logged.captured_queries)
    for result in (direct, wrapped):
        job = Job.objects.get(job_id=result.job_id)
        assert job.external_id == f"job-{result.job_id}" and job.external_run_id
        assert job.status in ("queued", "processing", "completed")
        assert wait_for_status(result.job_id, "completed").runner_type == "temporal"


def test_validation_errors_are_raised_before_anything_is_written(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: None)
    with pytest.raises(JobHandlerNotFound, match="No handler registered for job: nope"):
        runner.schedule_job("nope", {"tenantId": str(tenant)})
    with pytest.raises(TenantRequired):
        runner.schedule_job(job_name, {})
    with pytest.raises(InvalidJobData):
        runner.schedule_job(job_name, {"tenantId": str(tenant), "bad": object()})
    with pytest.raises(InvalidJobData) as err:
        runner.schedule_job(job_name, {"tenantId": str(tenant), "x": "\ud800"})
    assert str(err.value) == (
        "Job data contains a lone surrogate U+D800 (half of a UTF-16 pair), which PostgreSQL cannot store"
    )
    assert not Job.objects.exists()


def test_async_twins(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: "ok")

    async def flow():
        try:
            result = await runner.aschedule_job(job_name, {"tenantId": str(tenant)})
            for _ in range(200):
                status = await runner.aget_job_status(result.job_id, tenant)
                if status.status == "completed":
                    return status
                await asyncio.sleep(0.1)
            return status
        finally:
            await sync_to_async(connections.close_all)()  # the sync_to_async thread's connection

    assert asyncio.run(flow()).status == "completed"
    assert asyncio.run(runner.ais_healthy()) is True
    assert runner.is_healthy() is True


def test_a_terminated_workflow_is_not_reported_as_running(runner, job_name, tenant):
    JobHandlerRegistry.register(job_name, lambda job_id, data: time.sleep(20), timeout_ms=60_000)
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wait_for_status(result.job_id, "processing")

    async def terminate(client):
        await client.get_workflow_handle(result.external_id).terminate("operator")

    runner._rpc(_with_client(runner, terminate))

    status = wait_until(lambda: runner.get_job_status(result.job_id, tenant).status == "failed" or None)
    assert status
    assert "terminated" in Job.objects.get(job_id=result.job_id).meta["error"]


async def _with_client(runner, fn):
    return await fn(await runner._client_ready())
