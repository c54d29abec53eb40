"""The Temporal record's catch-up writes, against the real database: safe to repeat, at the times things happened.

Temporal delivers an activity at least once, and the workflow retries its bookkeeping until the database
answers, so every write here may arrive twice (or after a later one): each must be recorded exactly once.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta

import pytest

from jobscheduler import tracking
from jobscheduler.ids import new_id
from jobscheduler.models import Job, JobDetail, JobStatus
from jobscheduler.states import Outcome, RunnerType
from jobscheduler.temporal import records
from jobscheduler.temporal.inputs import RecordInput, WriteKind

pytestmark = pytest.mark.django_db(transaction=True)


def _running_job(tenant: uuid.UUID, attempt: int = 1) -> uuid.UUID:
    job_id = new_id()
    meta = tracking.build_metadata(json.dumps({"n": 1}), max_attempts=3)
    tracking.record_created(
        [tracking.NewJob(tenant, job_id, "t.records", meta, uuid.UUID(int=0))],
        status=JobStatus.PENDING,
        runner_type=RunnerType.TEMPORAL,
    )
    tracking.record_queued(tenant, job_id, external_id=f"job-{job_id}", external_run_id="run")
    for n in range(1, attempt + 1):
        assert records.begin_attempt(str(tenant), str(job_id), n, "temporal:test:1")[0] == {"n": 1}
        if n < attempt:
            records.catch_up(
                RecordInput(str(job_id), str(tenant), n, end={"outcome": Outcome.RETRY, "error": "E: x"})
            )
    return job_id


def _steps(job_id: uuid.UUID) -> list[tuple[str, str]]:
    return list(
        JobDetail.objects.filter(job_id=job_id)
        .order_by("processed_at", "detail_id")
        .values_list("step_name", "status")
    )


def test_a_late_end_is_recorded_once_at_the_time_it_happened(tenant):
    job_id = _running_job(tenant)
    started = datetime.fromisoformat(Job.objects.get(job_id=job_id).meta["startedAt"])
    step_at, ended = started + timedelta(milliseconds=100), started + timedelta(milliseconds=300)
    time.sleep(1.0)  # the database was away when the attempt ended
    step = {
        "kind": WriteKind.STEP,
        "detailId": str(new_id()),
        "name": "load",
        "status": "completed",
        "result": json.dumps({"rows": 3}),
        "at": step_at.isoformat(),
    }
    progress = {"kind": WriteKind.PROGRESS, "progress": 80, "message": "saving"}
    end = {"outcome": Outcome.COMPLETED, "result": {"ok": True}, "ended_at": ended.isoformat()}
    req = RecordInput(str(job_id), str(tenant), 1, [step, progress], None, end, ended.isoformat())

    assert records.catch_up(req) is True
    assert records.catch_up(req) is False  # delivered again: nothing more

    assert _steps(job_id) == [
        ("execution_started", "processing"),
        ("load", "completed"),
        ("execution_completed", "completed"),
    ]
    job = Job.objects.get(job_id=job_id)
    assert (
        job.status == "completed" and job.meta["progress"] == 100 and job.meta["progressMessage"] == "saving"
    )
    assert datetime.fromisoformat(job.meta["completedAt"]) == ended
    assert 0.7 <= job.meta["recordLagSeconds"] < 30
    load = JobDetail.objects.get(job_id=job_id, step_name="load")
    assert load.processed_at == step_at and load.result == {"rows": 3}
    done = JobDetail.objects.get(job_id=job_id, step_name="execution_completed")
    assert done.processed_at == ended and done.result == {"attempt": 1, "result": {"ok": True}}


def test_an_end_of_an_attempt_that_is_not_the_running_one_is_refused(tenant):
    job_id = _running_job(tenant, attempt=2)
    stale = RecordInput(str(job_id), str(tenant), 1, end={"outcome": Outcome.FAILED, "error": "E: old"})

    assert records.catch_up(stale) is False

    job = Job.objects.get(job_id=job_id)
    assert job.status == "processing" and job.meta["attempts"] == 2
    assert [s for s, _ in _steps(job_id)].count("execution_failed") == 1  # only attempt 1's retry


def test_a_repeated_start_of_one_attempt_is_recorded_once(tenant):
    job_id = _running_job(tenant)
    assert records.begin_attempt(str(tenant), str(job_id), 1, "temporal:test:2")[0] == {"n": 1}
    assert _steps(job_id) == [("execution_started", "processing")]


def test_a_cancel_of_a_job_no_attempt_runs_records_who_and_why(tenant):
    job_id = _running_job(tenant, attempt=2)
    records.catch_up(
        RecordInput(str(job_id), str(tenant), 2, end={"outcome": Outcome.RETRY, "error": "E: again"})
    )
    cancel = {"reason": "not needed", "cancelledBy": "ops@example.com"}

    assert records.catch_up(RecordInput(str(job_id), str(tenant), cancel=cancel)) is True
    assert records.catch_up(RecordInput(str(job_id), str(tenant), cancel=cancel)) is False

    job = Job.objects.get(job_id=job_id)
    assert job.status == "cancelled"
    assert (job.meta["cancelReason"], job.meta["cancelledBy"]) == ("not needed", "ops@example.com")
    assert _steps(job_id)[-1] == ("execution_cancelled", "cancelled")
    assert [s for s, _ in _steps(job_id)].count("execution_cancelled") == 1


def test_progress_after_the_end_changes_nothing(tenant):
    job_id = _running_job(tenant)
    records.catch_up(RecordInput(str(job_id), str(tenant), 1, end={"outcome": Outcome.COMPLETED}))
    late = {"kind": WriteKind.PROGRESS, "progress": 40, "message": "late signal"}

    records.catch_up(RecordInput(str(job_id), str(tenant), writes=[late]))

    job = Job.objects.get(job_id=job_id)
    assert job.meta["progress"] == 100 and job.meta.get("progressMessage") != "late signal"
