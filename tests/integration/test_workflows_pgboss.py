"""Workflows on pgboss with real worker processes: order (from the execution ledger), fan-in, failure, cancel,
retry, rollback, and two dependencies ending at the same instant on two connections."""

import asyncio
import threading
import uuid

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections, transaction

from jobscheduler import JobRunnerFactory, Workflow
from jobscheduler.exceptions import StepNotRetryable
from jobscheduler.models import Job, JobDetail, QueueJob, WorkflowDependency
from jobscheduler.models import Workflow as WorkflowRow
from jobscheduler.queue import sql
from tests.support.processes import libpq_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


@pytest.fixture
def ledger():
    """Executions of `wf.step` as (job_id, started, finished), finished NULL for a failed one."""
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS test_ledger (job_id uuid, attempt int, pid int, started float8, finished float8)"
        )
        cur.execute("TRUNCATE test_ledger")

    def rows() -> dict[str, list[tuple[float, float | None]]]:
        with psycopg.connect(libpq_url()) as conn:
            found: dict[str, list] = {}
            for job_id, started, ended in conn.execute("SELECT job_id, started, finished FROM test_ledger"):
                found.setdefault(str(job_id), []).append((started, ended))
            return found

    return rows


def job(job_id) -> Job:
    return Job.objects.get(job_id=job_id)


def workflow_done(runner, result, tenant):
    status = runner.get_workflow_status(result.workflow_id, tenant)
    return status if status.status != "processing" else None


def order_violations(wf: Workflow, result, executions) -> list[str]:
    """Steps that started before one of their dependencies' successful execution ended."""
    ids = dict(zip((s.index for s in wf.steps), result.job_ids, strict=True))
    bad = []
    for step in wf.steps:
        mine = executions.get(ids[step.index], [])
        for dep in step.dependencies:
            ends = [e for _, e in executions.get(ids[dep.index], []) if e is not None]
            for started, _ in mine:
                if not ends or started < min(ends):
                    bad.append(f"{step.label} started before {dep.label} ended")
    return bad


def test_fan_out_fan_in_chain_runs_in_order_and_sees_results(runner, start_worker, tenant, ledger):
    ledger()
    wf = Workflow("month-end", tenant_id=tenant)
    invoices = [wf.add("wf.step", {"n": i, "seconds": 0.3}) for i in range(6)]
    archive = wf.add("wf.step", {"n": "zip", "seconds": 0.1}, after=invoices)
    email = wf.add("wf.step", {"n": "email"}, after=[archive])
    result = runner.schedule_workflow(wf)

    assert len(result.job_ids) == 8 and result.job_ids[6] == str(archive.job_id)
    assert job(archive.job_id).status == "pending" and job(invoices[0].job_id).status == "queued"
    start_worker("--concurrency", "4")
    start_worker("--concurrency", "4")
    status = wait_for(lambda: workflow_done(runner, result, tenant), timeout=60, message="the workflow")
    assert status.status == "completed" and status.counts == {"completed": 8}

    executions = ledger()
    assert order_violations(wf, result, executions) == []
    assert {len(v) for v in executions.values()} == {1}  # every step ran exactly once
    zip_started = executions[str(archive.job_id)][0][0]
    assert zip_started >= max(executions[str(s.job_id)][0][1] for s in invoices)  # fan-in waited for all
    zip_result = JobDetail.objects.get(job_id=archive.job_id, step_name="execution_completed").result[
        "result"
    ]
    assert zip_result["seen"] == {
        str(s.job_id): {"n": i, "seen": {}, "seen_order": []} for i, s in enumerate(invoices)
    }
    assert zip_result["seen_order"] == [str(s.job_id) for s in invoices]
    email_result = JobDetail.objects.get(job_id=email.job_id, step_name="execution_completed").result[
        "result"
    ]
    assert email_result["seen_order"] == [str(archive.job_id)]
    meta = job(archive.job_id).meta
    assert meta["workflowId"] == result.workflow_id
    assert meta["dependsOn"] == [str(s.job_id) for s in invoices]
    assert not QueueJob.objects.filter(job_id__in=result.job_ids).exists()


def test_failure_cancels_dependents_transitively_and_run_after_failure_runs(
    runner, start_worker, tenant, ledger
):
    ledger()
    start_worker("--concurrency", "2")
    wf = Workflow("broken", tenant_id=tenant)
    bad = wf.add("wf.step", {"n": "bad", "fail": True})
    good = wf.add("wf.step", {"n": "good"})
    child = wf.add("wf.step", {"n": "child"}, after=[bad, good])
    grandchild = wf.add("wf.step", {"n": "grandchild"}, after=[child])
    cleanup = wf.add("wf.step", {"n": "cleanup"}, after=[bad], run_after_failure=True)
    result = runner.schedule_workflow(wf)

    status = wait_for(lambda: workflow_done(runner, result, tenant), timeout=60, message="the workflow")
    assert status.status == "failed"
    assert job(bad.job_id).status == "failed"
    assert job(child.job_id).status == "cancelled"
    assert (
        job(child.job_id).meta["cancelReason"] == f"Cancelled: dependency wf.step (job {bad.job_id}) failed"
    )
    assert job(child.job_id).meta["cancelledByJob"] == str(bad.job_id)
    assert job(grandchild.job_id).meta["cancelReason"] == (
        f"Cancelled: dependency wf.step (job {child.job_id}) was cancelled"
    )
    assert job(cleanup.job_id).status == "completed"
    executions = ledger()
    assert str(child.job_id) not in executions and str(grandchild.job_id) not in executions
    cleanup_seen = JobDetail.objects.get(job_id=cleanup.job_id, step_name="execution_completed").result
    assert cleanup_seen["result"]["seen"] == {}  # its only dependency failed: no result to see
    assert list(JobDetail.objects.filter(job_id=child.job_id).values_list("step_name", "status")) == [
        ("execution_cancelled", "cancelled")
    ]
    with pytest.raises(StepNotRetryable) as info:
        runner.retry_job(grandchild.job_id, tenant)
    assert str(info.value) == (
        f"Job {grandchild.job_id} was cancelled because its dependency {child.job_id} did not complete: "
        "retry that step instead"
    )


def test_retry_of_the_failed_step_resumes_the_workflow(runner, start_worker, tenant, ledger):
    ledger()
    start_worker("--concurrency", "3")
    wf = Workflow("resumable", tenant_id=tenant)
    flaky = wf.add("wf.step", {"n": "flaky", "fail_unless_retry": True})
    fine = wf.add("wf.step", {"n": "fine"})
    child = wf.add("wf.step", {"n": "child"}, after=[flaky, fine])
    last = wf.add("wf.step", {"n": "last"}, after=[child])
    result = runner.schedule_workflow(wf)
    status = wait_for(lambda: workflow_done(runner, result, tenant), timeout=60, message="the failure")
    assert status.status == "failed" and job(last.job_id).status == "cancelled"
    assert QueueJob.objects.get(job_id=child.job_id).blocked_by == flaky.job_id  # parked, resumable

    retried = runner.retry_job(flaky.job_id, tenant)
    assert job(child.job_id).status == "pending" and job(last.job_id).status == "pending"
    assert job(child.job_id).meta["dependsOn"] == [retried.job_id, str(fine.job_id)]
    status = wait_for(lambda: workflow_done(runner, result, tenant), timeout=60, message="the resumed run")
    assert status.status == "completed"
    assert job(retried.job_id).meta["retryOf"] == str(flaky.job_id)
    assert job(child.job_id).status == "completed" and job(last.job_id).status == "completed"
    executions = ledger()
    assert len(executions[str(child.job_id)]) == 1
    assert executions[str(child.job_id)][0][0] >= executions[retried.job_id][0][1]
    seen = JobDetail.objects.get(job_id=child.job_id, step_name="execution_completed").result["result"]
    assert seen["seen_order"] == [retried.job_id, str(fine.job_id)]  # the order of its dependencies
    assert "execution_resumed" in JobDetail.objects.filter(job_id=child.job_id).values_list(
        "step_name", flat=True
    )
    assert not QueueJob.objects.filter(tenant=tenant).exists()


def test_cancel_workflow_cancels_every_unfinished_step(runner, start_worker, tenant):
    start_worker()
    wf = Workflow("stop-me", tenant_id=tenant)
    running = wf.add("t.wait_cancel", {})
    waiting = wf.add("t.echo", {}, after=[running])
    queued_later = wf.add("t.echo", {}, after=[waiting])
    result = runner.schedule_workflow(wf)
    wait_for(lambda: job(running.job_id).status == "processing", message="the first step to start")

    assert runner.cancel_workflow(result.workflow_id, tenant) is True
    status = wait_for(lambda: workflow_done(runner, result, tenant), timeout=30, message="the cancellation")
    assert status.status == "cancelled"
    assert {s.status for s in status.steps} == {"cancelled"}
    assert job(waiting.job_id).meta["cancelReason"] == "Workflow cancelled"
    assert job(queued_later.job_id).meta["cancelReason"] == "Workflow cancelled"
    assert not QueueJob.objects.filter(tenant=tenant).exists()
    assert runner.cancel_workflow(result.workflow_id, tenant) is False  # nothing left to cancel
    assert runner.cancel_workflow(result.workflow_id, uuid.uuid4()) is False  # another tenant's: not found


def test_rolled_back_transaction_leaves_nothing(runner, tenant):
    wf = Workflow("never", tenant_id=tenant)
    first = wf.add("t.echo", {})
    wf.add("t.echo", {}, after=[first])
    with pytest.raises(RuntimeError), transaction.atomic():
        runner.schedule_workflow(wf)
        assert Job.objects.filter(tenant=tenant).count() == 2  # visible inside the transaction
        raise RuntimeError("roll back")
    assert not Job.objects.filter(tenant=tenant).exists()
    assert not QueueJob.objects.filter(tenant=tenant).exists()
    assert not WorkflowDependency.objects.filter(tenant=tenant).exists()
    assert not WorkflowRow.objects.filter(tenant=tenant).exists()
    assert runner.get_workflow_status(wf.workflow_id, tenant) is None


def test_async_twins(runner, tenant):
    wf = Workflow("async", tenant_id=tenant)
    first = wf.add("t.echo", {})
    wf.add("t.echo", {}, after=[first])

    async def go():
        result = await runner.aschedule_workflow(wf)
        status = await runner.aget_workflow_status(result.workflow_id, tenant)
        cancelled = await runner.acancel_workflow(result.workflow_id, tenant)
        await sync_to_async(connections.close_all)()  # the executor thread's connection
        return result, status, cancelled

    result, status, cancelled = asyncio.run(go())
    assert status.status == "processing" and [s.status for s in status.steps] == ["queued", "pending"]
    assert cancelled is True
    assert runner.get_workflow_status(result.workflow_id, tenant).counts == {"cancelled": 2}


def _claim(conn, name: str):
    return conn.execute(
        sql.CLAIM, {"worker_id": "test", "lease_seconds": 60, "names": [name], "limit": 10}
    ).fetchall()


def _finish(conn, row) -> None:
    job_id, tenant, _name, attempt, _max, token, *_rest = row
    conn.execute(
        sql.FINISH,
        {
            "tenants": [tenant],
            "ids": [job_id],
            "attempts": [attempt],
            "outcomes": ["completed"],
            "results": [None],
            "errors": [None],
            "error_types": [None],
            "tbs": [None],
            "delays": [None],
            "tokens": [token],
        },
    )


def test_two_dependencies_completing_at_once_release_the_step_exactly_once(runner, tenant):
    """Two connections record the completions of a step's two dependencies at the same time: the second
    statement waits on the step's row lock, and between them the step is released once, by the last."""
    wf = Workflow("race", tenant_id=tenant)
    left = wf.add("t.echo", {"side": "left"})
    right = wf.add("t.noop", {"side": "right"})
    joined = wf.add("t.echo", {"side": "joined"}, after=[left, right])
    runner.schedule_workflow(wf)
    one, two = psycopg.connect(libpq_url()), psycopg.connect(libpq_url())
    try:
        with one.transaction(), two.transaction():
            pass
        rows_one, rows_two = _claim(one, "t.noop"), None
        one.commit()
        rows_two = [r for r in _claim(two, "t.echo") if r[0] == left.job_id]
        two.commit()
        assert len(rows_one) == 1 and len(rows_two) == 1
        _finish(one, rows_one[0])  # in a transaction, not committed: holds the step's row lock
        blocked = threading.Thread(target=lambda: (_finish(two, rows_two[0]), two.commit()))
        blocked.start()
        blocked.join(1.0)
        assert blocked.is_alive()  # waiting for the first statement's lock on the step
        assert QueueJob.objects.get(job_id=joined.job_id).waiting_on == 2  # nothing visible yet
        one.commit()
        blocked.join(10)
        assert not blocked.is_alive()
    finally:
        one.close()
        two.close()
    step = QueueJob.objects.get(job_id=joined.job_id)
    assert step.waiting_on == 0 and step.blocked_by is None and step.run_at.year < 9000
    assert job(joined.job_id).status == "queued"
    assert WorkflowDependency.objects.filter(job_id=joined.job_id, settled=True).count() == 2
