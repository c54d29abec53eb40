"""Maintenance passes run in-process against the real database: retention, worker expiry, cron logs."""

import logging
import uuid
from datetime import UTC, datetime, timedelta

import pytest

import tests.support.handlers  # noqa: F401  (t.echo)
from jobscheduler import JobRunnerFactory, Workflow
from jobscheduler.models import Job, JobDetail, QueueJob, Schedule, Worker, WorkflowDependency
from jobscheduler.models import Workflow as WorkflowRow
from jobscheduler.queue.connection import open_connection
from jobscheduler.queue.maintenance import run_pass
from tests.factories import JobDetailFactory, JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_retention_prunes_old_finished_history_only(settings, tenant):
    settings.JOBSCHEDULER = {"RETENTION_DAYS": 7}
    old = datetime.now(UTC) - timedelta(days=8)
    old_done = JobFactory(tenant=tenant, status="completed", created_at=old, updated_at=old)
    JobDetailFactory(job=old_done)
    old_live = JobFactory(tenant=tenant, status="queued", created_at=old, updated_at=old)
    recent_done = JobFactory(tenant=tenant, status="failed")
    with open_connection() as conn:
        done = run_pass(conn, scheduler=False)
    assert done["pruned"] == 1
    assert set(Job.objects.values_list("job_id", flat=True)) == {old_live.job_id, recent_done.job_id}
    assert not JobDetail.objects.filter(job_id=old_done.job_id).exists()


def test_retention_none_keeps_everything(settings, tenant):
    settings.JOBSCHEDULER = {"RETENTION_DAYS": None}
    old = datetime.now(UTC) - timedelta(days=800)
    JobFactory(tenant=tenant, status="completed", created_at=old, updated_at=old)
    with open_connection() as conn:
        assert run_pass(conn, scheduler=False)["pruned"] == 0
    assert Job.objects.count() == 1


def test_silent_workers_are_dropped(settings):
    settings.JOBSCHEDULER = {"WORKER_EXPIRY_SECONDS": 10}
    now = datetime.now(UTC)
    for name, beat in (("gone", now - timedelta(seconds=30)), ("alive", now)):
        Worker.objects.create(
            id=name, host="h", pid=1, concurrency=1, started_at=now, heartbeat_at=beat, job_names=[]
        )
    with open_connection() as conn:
        assert run_pass(conn, scheduler=False)["expired_workers"] == 1
    assert list(Worker.objects.values_list("id", flat=True)) == ["alive"]


def test_rescue_of_an_expired_lease_without_attempts_left_fails_the_job(tenant):
    from django.db import connection

    job_id = uuid.uuid4()
    JobFactory(tenant=tenant, job_id=job_id, status="processing", metadata={"data": {}, "attempts": 1})
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO jobscheduler_queue (job_id, tenant, name, priority, run_at, attempt, max_attempts, "
            "lease_token, lease_expires_at, cancel_requested) "
            "VALUES (%s, %s, 't.noop', 0, now(), 1, 1, gen_random_uuid(), now() - interval '1 second', false)",
            [job_id, tenant],
        )
    with open_connection() as conn:
        assert run_pass(conn, scheduler=False)["rescued"] == 1
    job = Job.objects.get(job_id=job_id)
    assert job.status == "failed"
    assert job.metadata["error"] == "Worker lost: the lease expired without a heartbeat"


def test_cron_fire_log_names_the_tenant_and_the_job(tenant, other_tenant, caplog):
    """One key per tenant is the usual shape; each firing's log line must say whose it was and what it made."""
    runner = JobRunnerFactory.get_instance()
    for owner in (tenant, other_tenant):
        runner.schedule_recurring_job(
            "t.noop", {}, "0 3 * * *", schedule_key="reconcile-bucket-usage", tenant_id=owner
        )
    Schedule.objects.update(next_run_at=datetime.now(UTC) - timedelta(minutes=1))
    with caplog.at_level(logging.INFO, logger="jobscheduler.maintenance"), open_connection() as conn:
        assert run_pass(conn, prune=False)["fired"] == 2
    fired = [r for r in caplog.records if getattr(r, "action", None) == "cron_fire"]
    expected = set()
    for owner in (tenant, other_tenant):
        job = Job.objects.get(tenant=owner, type="t.noop")
        tick = job.metadata["tick"]
        expected.add(
            (
                f"Schedule reconcile-bucket-usage of tenant {owner} fired for tick {tick}: job {job.job_id}",
                str(owner),
                str(job.job_id),
            )
        )
    assert {(r.getMessage(), r.tenant, r.job_id) for r in fired} == expected


def test_retention_prunes_a_finished_workflow_with_its_edges_parked_rows_and_row(settings, tenant):
    """A workflow whose root was cancelled (its dependent parked, resumable) is pruned whole once old."""
    settings.JOBSCHEDULER = {"RETENTION_DAYS": 7}
    runner = JobRunnerFactory.get_instance()
    wf = Workflow("old", tenant_id=tenant)
    root = wf.add("t.echo", {})
    child = wf.add("t.echo", {}, after=[root])
    runner.schedule_workflow(wf)
    assert runner.cancel_job(root.job_id, tenant) is True
    assert QueueJob.objects.get(job_id=child.job_id).blocked_by == root.job_id
    with open_connection() as conn:
        assert run_pass(conn, scheduler=False)["pruned"] == 0  # recent: kept, still resumable
    old = datetime.now(UTC) - timedelta(days=8)
    Job.objects.filter(tenant=tenant).update(created_at=old, updated_at=old)
    WorkflowRow.objects.filter(pk=wf.workflow_id).update(created_at=old)
    with open_connection() as conn:
        assert run_pass(conn, scheduler=False)["pruned"] == 2
    assert not QueueJob.objects.filter(tenant=tenant).exists()
    assert not WorkflowDependency.objects.filter(tenant=tenant).exists()
    assert not WorkflowRow.objects.filter(pk=wf.workflow_id).exists()
