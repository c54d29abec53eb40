"""Django's task API on the Temporal backend: `@task` functions become GenericJobWorkflow runs, recorded alike."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from jobscheduler import JobRunnerFactory
from jobscheduler.models import Job
from jobscheduler.tasks import TaskResultStatus
from tests.support import tasks

from .conftest import InProcessWorker, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

TENANT = "6a1d1b7e-0000-4000-8000-00000000fe11"
TASKS = {
    "default": {
        "BACKEND": "jobscheduler.tasks.JobSchedulerBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {
            "TENANT_ID": TENANT,
            "RETRY": {"max_attempts": 4, "initial_interval_ms": 100, "max_interval_ms": 200},
        },
    }
}


@pytest.fixture
def on_temporal(settings, temporal_address, task_queue, temporal_worker, tmp_path, monkeypatch):
    """The process's runner is Temporal (the session's dev server and in-process worker); task signals are
    logged to a file, read back by the returned function."""
    settings.JOB_RUNNER_TYPE = "temporal"
    settings.JOB_RUNNER_FALLBACK_TO_PGBOSS = False
    settings.TEMPORAL_ADDRESS = temporal_address
    settings.TEMPORAL_JOB_TASK_QUEUE = task_queue
    settings.TASKS = TASKS
    log = tmp_path / "signals.jsonl"
    monkeypatch.setenv("TASK_SIGNALS_LOG", str(log))
    JobRunnerFactory.reset()
    assert JobRunnerFactory.get_instance().runner_type == "temporal"

    def signals(job_id: str) -> list[tuple[str, str, int]]:
        lines = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return [(s["signal"], s["status"], s["errors"]) for s in lines if s["id"] == job_id]

    return signals


def finished(result):
    result.refresh()
    return result if result.is_finished else None


def test_a_task_runs_as_a_workflow_and_its_result_comes_from_the_record(on_temporal):
    result = tasks.add.enqueue(2, 3)
    job = Job.objects.get(job_id=result.id)
    assert (
        job.runner_type == "temporal" and job.type == "tests.support.tasks.add" and str(job.tenant) == TENANT
    )
    wait_until(lambda: finished(result))

    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 5
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert len(result.worker_ids) == 1 and result.worker_ids[0].startswith("temporal:")
    assert on_temporal(result.id) == [
        ("enqueued", "READY", 0),
        ("started", "RUNNING", 0),
        ("finished", "SUCCESSFUL", 0),
    ]


def test_failure_records_each_attempts_error_and_retries_follow_the_options(on_temporal):
    result = tasks.always_fails.enqueue("card declined")
    wait_until(lambda: finished(result), timeout=30)

    assert result.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in result.errors] == ["tests.support.tasks.PaymentDeclined"] * 4
    assert "PaymentDeclined: card declined" in result.errors[-1].traceback
    assert len(result.worker_ids) == 4
    assert on_temporal(result.id)[-1] == ("finished", "FAILED", 4)
    assert [s for s, _, _ in on_temporal(result.id)].count("finished") == 1


def test_takes_context_sees_the_right_attempt(on_temporal):
    result = tasks.flaky.enqueue(succeed_on=3)
    wait_until(lambda: finished(result), timeout=30)
    assert result.return_value == {
        "attempt": 3,
        "job_attempt": 3,
        "worker_ids": 3,
        "errors": ["builtins.ConnectionError", "builtins.ConnectionError"],
    }


def test_async_task_with_aenqueue_and_aget_result(on_temporal):
    # async_to_sync, as a view would: the runner's database work then runs in this thread, on its connection.
    result = async_to_sync(tasks.async_double.aenqueue)(21)
    assert result.status == TaskResultStatus.READY
    wait_until(lambda: finished(result))
    fetched = async_to_sync(tasks.async_double.aget_result)(result.id)
    assert (fetched.status, fetched.return_value) == (TaskResultStatus.SUCCESSFUL, 42)


def test_a_deferred_task_starts_after_run_after(on_temporal):
    run_after = timezone.now() + timedelta(seconds=2)
    result = tasks.add.using(run_after=run_after).enqueue(1, 1)
    time.sleep(1)
    result.refresh()
    assert result.status == TaskResultStatus.READY
    wait_until(lambda: finished(result))
    assert result.return_value == 2 and result.started_at >= run_after


def test_priority_and_queue_name_are_recorded(on_temporal, temporal_address, task_queue):
    result = tasks.add.using(priority=7, queue_name="reports").enqueue(1, 2)
    # A worker started without --queues serves the QUEUES of settings.TASKS: "reports" is a task queue of its own.
    worker = InProcessWorker(temporal_address, task_queue)
    worker.start()
    try:
        assert set(worker.workers.served) >= {"default", "reports"}
        wait_until(lambda: finished(result))
    finally:
        worker.stop()
    job = Job.objects.get(job_id=result.id)
    assert job.metadata["priority"] == 7 and job.metadata["queue"] == "reports"
    again = tasks.add.get_result(result.id)
    assert (again.task.priority, again.task.queue_name, again.return_value) == (7, "reports", 3)


def test_a_rolled_back_enqueue_starts_nothing(on_temporal):
    with pytest.raises(RuntimeError), transaction.atomic():
        doomed = tasks.add.enqueue(1, 2)
        raise RuntimeError("rollback")
    kept = tasks.add.enqueue(2, 2)
    wait_until(lambda: finished(kept))
    assert not Job.objects.filter(job_id=doomed.id).exists()
    assert on_temporal(doomed.id) == []
