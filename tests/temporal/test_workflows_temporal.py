"""Workflows on Temporal with the dev server and a real worker: one orchestrating workflow per Workflow, each
step a GenericJobWorkflow child recorded in the same rows as on pgboss."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import transaction

from jobscheduler import Workflow, current_job
from jobscheduler.exceptions import InvalidWorkflow, StepNotRetryable
from jobscheduler.models import Job, JobDetail
from jobscheduler.models import Workflow as WorkflowRow
from jobscheduler.registry import JobHandlerRegistry, RetryPolicy

from .conftest import wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


class Ledger:
    """Start and end time of each execution, written by the handlers (the worker runs in this process)."""

    def __init__(self) -> None:
        self.runs: dict[str, list[tuple[float, float | None]]] = {}
        self._lock = threading.Lock()

    def record(self, job_id: str, started: float, ended: float | None) -> None:
        with self._lock:
            self.runs.setdefault(job_id, []).append((started, ended))


@pytest.fixture
def ledger(job_name):
    ledger = Ledger()

    def step(job_id, data):
        started = time.time()
        time.sleep(float(data.get("seconds", 0)))
        ctx = current_job()
        seen = ctx.dependency_results
        is_retry = bool(Job.objects.get(job_id=job_id).meta.get("retryOf"))
        if data.get("fail") or (data.get("fail_unless_retry") and not is_retry):
            ledger.record(job_id, started, None)
            raise RuntimeError(f"step {data.get('n')} failed on purpose")
        if data.get("wait_cancel"):
            while not ctx.is_cancelled:
                time.sleep(0.05)
            ctx.raise_if_cancelled()
        ledger.record(job_id, started, time.time())
        return {"n": data.get("n"), "seen_order": list(seen)}

    JobHandlerRegistry.register(job_name, step, retry=RetryPolicy(max_attempts=1), timeout_ms=60_000)
    return ledger


def done(runner, result, tenant, timeout: float = 60.0):
    return wait_until(
        lambda: (
            (s := runner.get_workflow_status(result.workflow_id, tenant)) and s.status != "processing" and s
        ),
        timeout,
    )


def job(job_id) -> Job:
    return Job.objects.get(job_id=job_id)


def test_fan_out_fan_in_and_chain_in_order(runner, job_name, tenant, ledger):
    wf = Workflow("month-end", tenant_id=tenant)
    invoices = [wf.add(job_name, {"n": i, "seconds": 0.3}) for i in range(4)]
    archive = wf.add(job_name, {"n": "zip"}, after=invoices)
    email = wf.add(job_name, {"n": "email"}, after=[archive])
    result = runner.schedule_workflow(wf)

    status = done(runner, result, tenant)
    assert status.status == "completed" and status.counts == {"completed": 6}
    runs = ledger.runs
    assert {len(v) for v in runs.values()} == {1}
    assert runs[str(archive.job_id)][0][0] >= max(runs[str(s.job_id)][0][1] for s in invoices)
    assert runs[str(email.job_id)][0][0] >= runs[str(archive.job_id)][0][1]
    zipped = JobDetail.objects.get(job_id=archive.job_id, step_name="execution_completed").result["result"]
    assert zipped["seen_order"] == [str(s.job_id) for s in invoices]
    record = job(archive.job_id)
    assert record.runner_type == "temporal" and record.external_id == f"job-{archive.job_id}"
    assert record.meta["workflowId"] == result.workflow_id
    assert WorkflowRow.objects.get(pk=result.workflow_id).external_id == f"jobworkflow-{result.workflow_id}"


def test_failure_cancels_dependents_and_retry_resumes(runner, job_name, tenant, ledger):
    wf = Workflow("resumable", tenant_id=tenant)
    flaky = wf.add(job_name, {"n": "flaky", "fail_unless_retry": True})
    fine = wf.add(job_name, {"n": "fine"})
    child = wf.add(job_name, {"n": "child"}, after=[flaky, fine])
    last = wf.add(job_name, {"n": "last"}, after=[child])
    cleanup = wf.add(job_name, {"n": "cleanup"}, after=[flaky], run_after_failure=True)
    result = runner.schedule_workflow(wf)

    status = done(runner, result, tenant)
    assert status.status == "failed"
    assert (
        job(child.job_id).meta["cancelReason"]
        == f"Cancelled: dependency {job_name} (job {flaky.job_id}) failed"
    )
    assert job(child.job_id).meta["cancelledByJob"] == str(flaky.job_id)
    assert job(last.job_id).meta["cancelReason"] == (
        f"Cancelled: dependency {job_name} (job {child.job_id}) was cancelled"
    )
    assert job(cleanup.job_id).status == "completed"
    assert str(child.job_id) not in ledger.runs
    with pytest.raises(StepNotRetryable) as info:
        runner.retry_job(last.job_id, tenant)
    assert str(info.value) == (
        f"Job {last.job_id} was cancelled because its dependency {child.job_id} did not complete: "
        "retry that step instead"
    )

    retried = runner.retry_job(flaky.job_id, tenant)
    status = done(runner, result, tenant)
    assert status.status == "completed"
    assert job(child.job_id).status == "completed" and job(last.job_id).status == "completed"
    assert ledger.runs[str(child.job_id)][0][0] >= ledger.runs[retried.job_id][0][1]
    seen = JobDetail.objects.get(job_id=child.job_id, step_name="execution_completed").result["result"]
    assert seen["seen_order"] == [retried.job_id, str(fine.job_id)]
    assert len(ledger.runs[str(fine.job_id)]) == 1  # the completed step is not run again


def test_cancel_workflow(runner, job_name, tenant, ledger):
    wf = Workflow("stop-me", tenant_id=tenant)
    running = wf.add(job_name, {"n": "running", "wait_cancel": True})
    waiting = wf.add(job_name, {"n": "waiting"}, after=[running])
    result = runner.schedule_workflow(wf)
    wait_until(lambda: job(running.job_id).status == "processing", 30)

    assert runner.cancel_workflow(result.workflow_id, tenant) is True
    status = done(runner, result, tenant)
    assert status.status == "cancelled" and {s.status for s in status.steps} == {"cancelled"}
    assert job(waiting.job_id).meta["cancelReason"] == "Workflow cancelled"
    assert runner.cancel_workflow(result.workflow_id, tenant) is False


def test_rolled_back_transaction_leaves_nothing_and_starts_nothing(runner, job_name, tenant, ledger):
    wf = Workflow("never", tenant_id=tenant)
    first = wf.add(job_name, {"n": 1})
    wf.add(job_name, {"n": 2}, after=[first])
    with pytest.raises(RuntimeError), transaction.atomic():
        runner.schedule_workflow(wf)
        raise RuntimeError("roll back")
    time.sleep(1.5)
    assert not Job.objects.filter(tenant=tenant).exists()
    assert not WorkflowRow.objects.filter(tenant=tenant).exists()
    assert ledger.runs == {}

    with transaction.atomic():  # committed: it starts after the commit
        wf2 = Workflow("committed", tenant_id=tenant)
        wf2.add(job_name, {"n": "after-commit"})
        result = runner.schedule_workflow(wf2)
        assert job(result.job_ids[0]).status == "pending"
    assert done(runner, result, tenant).status == "completed"


def test_validation_happens_before_anything_is_written(runner, job_name, tenant, ledger):
    wf = Workflow("loop", tenant_id=tenant)
    a = wf.add(job_name, {})
    b = wf.add(job_name, {}, after=[a])
    a.after(b)
    with pytest.raises(InvalidWorkflow) as info:
        runner.schedule_workflow(wf)
    assert str(info.value) == (
        f"Workflow 'loop' has a dependency cycle: step 1 ({job_name}) -> step 2 ({job_name}) -> step 1 "
        f"({job_name}) (each waits for the next)"
    )
    assert not Job.objects.filter(tenant=tenant).exists() and not WorkflowRow.objects.exists()
