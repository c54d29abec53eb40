"""Django's task API on the pgboss backend: `@task` functions enqueued here, run by real worker subprocesses."""

from __future__ import annotations

import json
import signal
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import InvalidJobData, JobHandlerNotFound, TenantRequired
from jobscheduler.models import Job, JobDetail, QueueJob
from jobscheduler.queue.enqueue import enqueue
from jobscheduler.tasks import InvalidTask, TaskResultDoesNotExist, TaskResultStatus, task_enqueued
from tests.support import tasks
from tests.support.processes import FAST_SETTINGS, WorkerProcess, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TENANT = "6a1d1b7e-0000-4000-8000-000000007a5c"
#: The backend as the test process and its worker subprocesses see it: a retry policy that is not the default
#: one (4 attempts, fast), a short timeout, and a second queue.
TASKS = {
    "default": {
        "BACKEND": "jobscheduler.tasks.JobSchedulerBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {
            "TENANT_ID": TENANT,
            "RETRY": {"max_attempts": 4, "initial_interval_ms": 100, "max_interval_ms": 200},
            "TIMEOUT_MS": 1500,
        },
    }
}


@pytest.fixture
def signals_log(tmp_path, monkeypatch):
    path = tmp_path / "signals.jsonl"
    monkeypatch.setenv("TASK_SIGNALS_LOG", str(path))

    def read(job_id: str | None = None) -> list[dict]:
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        return [line for line in lines if job_id is None or line["id"] == job_id]

    return read


@pytest.fixture
def task_worker(tmp_path, settings, signals_log):
    settings.JOBSCHEDULER = dict(FAST_SETTINGS)
    settings.TASKS = TASKS
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(
            list(args),
            FAST_SETTINGS,
            tmp_path / f"worker-{len(started)}.log",
            extra_env={"TASKS": json.dumps(TASKS), "TASK_SIGNALS_LOG": str(tmp_path / "signals.jsonl")},
        )
        started.append(worker)
        worker.wait_started()
        return worker

    yield start
    for worker in started:
        worker.signal(signal.SIGKILL)
        worker.wait(10)


def finished(result):
    result.refresh()
    return result if result.is_finished else None


def test_a_task_runs_and_its_result_comes_from_the_record(task_worker, signals_log):
    worker = task_worker()
    result = tasks.add.enqueue(2, 3)

    assert result.status == TaskResultStatus.READY and result.args == [2, 3] and result.kwargs == {}
    job = Job.objects.get(job_id=result.id)
    assert job.type == "tests.support.tasks.add" and str(job.tenant) == TENANT
    assert job.metadata["queue"] == "default" and job.metadata["task"] == {"backend": "default"}
    assert job.metadata["data"] == {"args": [2, 3], "kwargs": {}}
    wait_for(lambda: finished(result), message="the task to finish")

    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert result.enqueued_at <= result.started_at <= result.last_attempted_at <= result.finished_at
    assert result.errors == []
    job.refresh_from_db()
    assert result.worker_ids == [job.metadata["workerId"]] and result.attempts == 1
    assert job.metadata["workerId"].split(":")[1] == str(worker.pid)
    again = tasks.add.get_result(result.id)
    assert (again.status, again.return_value, again.args, again.worker_ids) == (
        TaskResultStatus.SUCCESSFUL,
        5,
        [2, 3],
        result.worker_ids,
    )
    sent = [(s["signal"], s["status"]) for s in signals_log(result.id)]
    assert ("enqueued", "READY") in sent  # sent by this process, the others by the worker
    assert [s for s in sent if s[0] != "enqueued"] == [("started", "RUNNING"), ("finished", "SUCCESSFUL")]


def test_a_failing_task_records_one_error_per_attempt_with_its_class_path(task_worker, signals_log):
    task_worker()
    result = tasks.always_fails.enqueue("card declined")
    wait_for(lambda: finished(result), timeout=30, message="the retries to run out")

    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 4  # OPTIONS["RETRY"]: 4 attempts, not the default 3
    assert {e.exception_class_path for e in result.errors} == {"tests.support.tasks.PaymentDeclined"}
    assert result.errors[0].exception_class is tasks.PaymentDeclined
    assert "PaymentDeclined: card declined" in result.errors[-1].traceback
    assert "Traceback (most recent call last)" in result.errors[-1].traceback
    assert len(result.worker_ids) == 4 and result.finished_at is not None
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value
    sent = [(s["signal"], s["status"], s["errors"]) for s in signals_log(result.id)]
    assert [s for s in sent if s[0] != "enqueued"] == [("started", "RUNNING", n) for n in range(4)] + [
        ("finished", "FAILED", 4)
    ]
    assert Job.objects.get(job_id=result.id).type == "tests.support.tasks.always_fails"


def test_takes_context_sees_the_right_attempt(task_worker):
    task_worker()
    result = tasks.flaky.enqueue(succeed_on=3)
    wait_for(lambda: finished(result), timeout=30, message="the flaky task")

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {
        "attempt": 3,
        "job_attempt": 3,
        "worker_ids": 3,
        "errors": ["builtins.ConnectionError", "builtins.ConnectionError"],
    }
    assert [e.exception_class_path for e in result.errors] == ["builtins.ConnectionError"] * 2
    assert result.kwargs == {"succeed_on": 3} and result.args == []


def test_an_async_task_runs(task_worker):
    task_worker()
    result = tasks.async_double.enqueue(21)
    wait_for(lambda: finished(result), message="the async task")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42


def test_a_deferred_task_waits_for_run_after(task_worker):
    task_worker()
    run_after = timezone.now() + timedelta(seconds=2)
    result = tasks.add.using(run_after=run_after).enqueue(1, 1)
    assert QueueJob.objects.get(job_id=result.id).run_at == run_after
    time.sleep(1.2)
    result.refresh()
    assert result.status == TaskResultStatus.READY and result.started_at is None
    wait_for(lambda: finished(result), message="the deferred task")
    assert result.return_value == 2 and result.started_at >= run_after
    assert tasks.add.get_result(result.id).task.run_after == run_after


def test_priority_orders_the_queue(task_worker):
    results = {
        label: tasks.note_order.using(priority=priority).enqueue(label)
        for label, priority in (("low", -10), ("middle", 0), ("high", 10))
    }
    task_worker("--concurrency", "1")
    for result in results.values():
        wait_for(lambda r=result: finished(r), message="every task")
    order = sorted(results, key=lambda label: results[label].started_at)
    assert order == ["high", "middle", "low"]
    assert Job.objects.get(job_id=results["high"].id).metadata["priority"] == 10
    assert tasks.note_order.get_result(results["low"].id).task.priority == -10


def test_queue_name_is_the_jobs_queue_and_queues_are_enforced(task_worker):
    task_worker()
    result = tasks.add.using(queue_name="reports").enqueue(4, 4)
    assert Job.objects.get(job_id=result.id).metadata["queue"] == "reports"
    wait_for(lambda: finished(result), message="the task on the reports queue")
    assert result.return_value == 8 and tasks.add.get_result(result.id).task.queue_name == "reports"
    before = Job.objects.count()
    with pytest.raises(InvalidTask) as refused:
        tasks.add.using(queue_name="nope").enqueue(1, 2)
    assert str(refused.value) == "Queue 'nope' is not valid for backend."
    assert Job.objects.count() == before


def test_the_timeout_option_fails_a_slow_attempt(task_worker, signals_log):
    task_worker()
    result = tasks.slow_first_attempt.enqueue()
    wait_for(lambda: finished(result), timeout=30, message="the slow task")
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2
    time.sleep(1.0)  # the timed-out attempt's thread sees its interrupt a little later: it must not "finish"
    assert [s["status"] for s in signals_log(result.id) if s["signal"] == "finished"] == ["SUCCESSFUL"]
    assert result.errors[0].exception_class_path == "jobscheduler.exceptions.JobTimeout"
    failed = JobDetail.objects.get(job_id=result.id, step_name="execution_failed")
    assert failed.result["error"] == "JobTimeout: Attempt exceeded its timeout of 1500 ms"


def test_a_return_value_that_is_not_json_fails_the_task(task_worker):
    task_worker()
    result = tasks.returns_a_set.enqueue()
    wait_for(lambda: finished(result), timeout=30, message="the task")
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"
    assert "Unsupported type: <class 'set'>" in result.errors[0].traceback


def test_a_cancelled_task_is_failed_with_a_clear_error(settings):
    settings.TASKS = TASKS
    result = tasks.add.using(run_after=timezone.now() + timedelta(hours=1)).enqueue(1, 2)
    assert JobRunnerFactory.get_instance().cancel_job(result.id, TENANT)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.finished_at is not None
    assert [e.exception_class_path for e in result.errors] == ["jobscheduler.exceptions.JobCancelled"]
    assert result.errors[0].traceback == (
        "jobscheduler.exceptions.JobCancelled: the job was cancelled (Cancelled by request)"
    )


def test_enqueue_in_a_rolled_back_transaction_leaves_nothing(settings):
    settings.TASKS = TASKS
    sent = []

    def on_enqueued(sender, task_result, **kwargs):
        sent.append(task_result.id)

    task_enqueued.connect(on_enqueued)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            doomed = tasks.add.enqueue(1, 2)
            assert Job.objects.filter(job_id=doomed.id).exists()
            raise RuntimeError("rollback")
        assert not Job.objects.filter(job_id=doomed.id).exists()
        assert not QueueJob.objects.filter(job_id=doomed.id).exists()
        assert sent == []
        with transaction.atomic():
            kept = tasks.add.enqueue(1, 2)
            assert sent == []  # enqueued is sent when the job exists for everyone: at commit
        assert sent == [kept.id] and QueueJob.objects.filter(job_id=kept.id).exists()
    finally:
        task_enqueued.disconnect(on_enqueued)


def test_a_job_naming_a_plain_function_fails_and_never_runs(task_worker):
    path = "tests.support.tasks.plain_function"
    with pytest.raises(JobHandlerNotFound) as refused:
        JobRunnerFactory.get_instance().schedule_job(path, {}, tenant_id=TENANT)
    assert str(refused.value) == f"No handler registered for job: {path}"
    job_id = uuid.uuid4()
    with connection.cursor() as cur:  # a row written by hand (or by an older version of the code)
        meta = json.dumps({"data": {"args": [], "kwargs": {}}})
        enqueue(
            cur,
            job_name=path,
            queue="default",
            tenants=[uuid.UUID(TENANT)],
            ids=[job_id],
            metas=[meta],
            user=uuid.uuid4(),
        )
    task_worker()
    done = wait_for(
        lambda: Job.objects.filter(job_id=job_id, status="failed").first(), message="the job to fail"
    )
    assert done.metadata["error"] == f"JobHandlerNotFound: No handler registered for job: {path}"
    assert done.metadata["attempts"] == 1


def test_bad_arguments_and_missing_tenant_are_refused_before_anything_is_written(settings):
    settings.TASKS = TASKS
    before = Job.objects.count()
    with pytest.raises(InvalidJobData) as refused:
        tasks.add.enqueue({1, 2}, 3)
    assert str(refused.value) == (
        "Arguments of task tests.support.tasks.add must be JSON-serialisable: Unsupported type: <class 'set'>"
    )
    settings.TASKS = {"default": {"BACKEND": "jobscheduler.tasks.JobSchedulerBackend"}}
    with pytest.raises(TenantRequired) as no_tenant:
        tasks.add.enqueue(1, 2)
    assert str(no_tenant.value) == (
        "A tenant is required for tasks on this site: set TASKS['default']['OPTIONS']['TENANT_ID']"
    )
    assert Job.objects.count() == before


def test_get_result_of_an_unknown_id_or_of_a_job_that_is_no_task(settings):
    settings.TASKS = TASKS
    from jobscheduler.tasks import JobSchedulerBackend

    backend = tasks.add.get_backend()
    assert isinstance(backend, JobSchedulerBackend)
    plain = JobRunnerFactory.get_instance().schedule_job("t.noop", {}, tenant_id=TENANT)
    for unknown in ("not-a-uuid", str(uuid.uuid4()), plain.job_id):
        with pytest.raises(TaskResultDoesNotExist) as missing:
            backend.get_result(unknown)
        assert str(missing.value) == f"No result of task backend 'default' with id {unknown!r}"
