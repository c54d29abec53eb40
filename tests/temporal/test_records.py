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


def _end(tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, outcome: Outcome) -> tracking.AttemptOutcome:
    return tracking.AttemptOutcome(tenant=tenant, job_id=job_id, attempt=attempt, outcome=outcome)


def test_an_end_with_nothing_else_to_write_is_taken_once_and_only_from_the_running_attempt(tenant):
    """settle_attempt's one-statement form (no steps to write): the guard is in the statement."""
    job_id = _running_job(tenant, attempt=2)

    assert records.settle_attempt(tenant, job_id, 1, [], _end(tenant, job_id, 1, Outcome.FAILED)) is False
    assert records.settle_attempt(tenant, job_id, 2, [], _end(tenant, job_id, 2, Outcome.COMPLETED)) is True
    assert records.settle_attempt(tenant, job_id, 2, [], _end(tenant, job_id, 2, Outcome.COMPLETED)) is False
    assert records.settle_attempt(tenant, job_id, 2, [], None) is False

    job = Job.objects.get(job_id=job_id)
    assert job.status == "completed"
    steps = [s for s, _ in _steps(job_id)]
    assert (steps.count("execution_failed"), steps.count("execution_completed")) == (
        1,
        1,
    )  # attempt 1's retry


def test_the_start_of_a_job_that_waits_for_no_attempt_is_looked_at_closely(tenant):
    """begin_attempt's one statement only starts a job that waits (pending or queued); the others take the
    locked path: a final job runs nothing, a lost attempt is recorded before the next one starts."""
    finished = _running_job(tenant)
    records.settle_attempt(tenant, finished, 1, [], _end(tenant, finished, 1, Outcome.COMPLETED))
    assert records.begin_attempt(str(tenant), str(finished), 2, "temporal:test:3") is None
    assert Job.objects.get(job_id=finished).meta["attempts"] == 1

    lost = _running_job(tenant)  # attempt 1 started, its worker died: attempt 2 begins
    assert records.begin_attempt(str(tenant), str(lost), 2, "temporal:test:4")[0] == {"n": 1}
    job = Job.objects.get(job_id=lost)
    assert (job.status, job.meta["attempts"], job.meta["workerId"]) == ("processing", 2, "temporal:test:4")
    assert _steps(lost) == [
        ("execution_started", "processing"),
        ("execution_failed", "failed"),
        ("execution_retry_scheduled", "queued"),
        ("execution_started", "processing"),
    ]


def test_a_waiting_job_starts_in_one_statement_with_its_payload_and_trace_context(
    tenant, django_assert_num_queries
):
    job_id = new_id()
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"}
    meta = tracking.build_metadata(json.dumps({"n": 2}), extra=trace, max_attempts=1)
    tracking.record_created(
        [tracking.NewJob(tenant, job_id, "t.records", meta, uuid.UUID(int=0))],
        status=JobStatus.PENDING,
        runner_type=RunnerType.TEMPORAL,
    )
    tracking.record_queued(tenant, job_id, external_id=f"job-{job_id}", external_run_id="run")

    with django_assert_num_queries(1):
        data, carrier = records.begin_attempt(str(tenant), str(job_id), 1, "temporal:test:5")

    assert data == {"n": 2}
    assert (carrier["traceparent"], carrier["tracestate"]) == (trace["traceparent"], "k=v")
    assert Job.objects.get(job_id=job_id).status == "processing"
    assert _steps(job_id) == [("execution_started", "processing")]


def test_a_worker_quicker_than_the_start_call_leaves_the_workflow_ids_to_it(tenant):
    """The attempt may begin before the caller that started the workflow records `queued`: the row keeps its
    status and still gets the workflow and run ids (they are how cancel and status find the workflow)."""
    job_id = new_id()
    meta = tracking.build_metadata(json.dumps({"n": 3}), max_attempts=1)
    tracking.record_created(
        [tracking.NewJob(tenant, job_id, "t.records", meta, uuid.UUID(int=0))],
        status=JobStatus.PENDING,
        runner_type=RunnerType.TEMPORAL,
    )
    assert records.begin_attempt(str(tenant), str(job_id), 1, "temporal:test:6")[0] == {"n": 3}

    tracking.record_queued(tenant, job_id, external_id=f"job-{job_id}", external_run_id="run-1")
    tracking.record_queued(tenant, job_id, external_id="job-other", external_run_id="run-2")  # ids are kept

    job = Job.objects.get(job_id=job_id)
    assert (job.status, job.external_id, job.external_run_id) == ("processing", f"job-{job_id}", "run-1")
