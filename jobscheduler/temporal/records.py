"""The monitoring-record side of an attempt, as the activities need it: sync Django code, run in a thread.

Every write goes through `jobscheduler.tracking`. Each function locks the `jobs` row first so a late or repeated
activity (Temporal delivers at least once) cannot record over a newer state: an attempt's end is only taken
while that attempt is the one running (status `processing`, `attempts` = its number), a handler's step is keyed
by an id chosen when it happened, so writing any of them twice records it once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.utils import timezone
from temporalio.client import WorkflowExecutionStatus

from .. import outcomes, tracking
from ..exceptions import AttemptLost, WorkflowClosed
from ..models import FINAL_STATUSES, LIVE_STATUSES, Job, JobStatus, Schedule, ScheduleRun, Worker
from ..queues import DEFAULT_QUEUE
from ..runners.base import load_job
from ..states import Outcome, RunnerType
from .inputs import CreateInput, FinalizeInput, RecordInput, StepQueuedInput, WriteKind

RUNNER_TYPE = RunnerType.TEMPORAL

_CLOSED_FAILURES = {
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "continued as new",
}


def _locked_job(tenant: str, job_id: str) -> Job | None:
    return Job.objects.select_for_update().filter(tenant=tenant, job_id=job_id).first()


def create_scheduled_record(req: CreateInput, workflow_id: str, run_id: str) -> None:
    """The `jobs` row of one run of a Temporal Schedule, linked to its schedule (once, however often retried)."""
    tenant, job_id = uuid.UUID(req.tenant), uuid.UUID(req.job_id)
    schedule_id = uuid.UUID(req.schedule_id) if req.schedule_id else None
    with transaction.atomic():
        if Job.objects.filter(tenant=tenant, job_id=job_id).exists():
            return
        metadata = tracking.build_metadata(
            json.dumps(req.data, separators=(",", ":")),
            extra={**(req.metadata or {}), "tick": req.scheduled_at},
            max_attempts=req.max_attempts,
            schedule_id=schedule_id,
            queue=req.queue or DEFAULT_QUEUE,
            timeout_ms=req.timeout_ms,
        )
        user_id = uuid.UUID(req.user_id) if req.user_id else uuid.UUID(int=0)
        tracking.record_created(
            [tracking.NewJob(tenant, job_id, req.job_name, metadata, user_id)],
            status=JobStatus.PENDING,
            runner_type=RUNNER_TYPE,
        )
        tracking.record_queued(tenant, job_id, external_id=workflow_id, external_run_id=run_id)
        if schedule_id is None:
            return
        schedule = Schedule.objects.filter(id=schedule_id, tenant=tenant).first()
        if schedule is None:
            return
        tick = datetime.fromisoformat(req.scheduled_at)
        ScheduleRun.objects.get_or_create(schedule=schedule, tick=tick, defaults={"job_id": job_id})
        Schedule.objects.filter(pk=schedule.pk).update(last_run_at=tick, last_job_id=job_id)


def begin_attempt(
    tenant: str, job_id: str, attempt: int, worker_id: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Record `execution_started` and return the payload and the job's metadata (for its trace context);
    None when the job is gone or already final.

    When the previous attempt started but never recorded its end, its worker died or Temporal timed it out:
    that attempt is recorded as failed-and-retried first, so every attempt has its end in `job_details`. When
    this very attempt is already recorded as started (an earlier try of it lost the database's answer), nothing
    is written again.

    The usual start, of a job waiting for it, is one statement; only the others take the lock and look closer.
    """
    tenant_uuid, job_uuid = uuid.UUID(tenant), uuid.UUID(job_id)
    started = tracking.record_started_if_waiting(tenant_uuid, job_uuid, attempt, worker_id=worker_id)
    if started is not None:
        return started["data"], started
    with transaction.atomic():
        job = _locked_job(tenant, job_id)
        if job is None or job.status in FINAL_STATUSES:
            return None
        if attempt > 1 and job.status == JobStatus.PROCESSING and job.meta.get("attempts") == attempt - 1:
            lost = AttemptLost(f"Attempt {attempt - 1} was lost: its worker stopped or it timed out")
            tracking.record_finished(
                [
                    outcomes.failed(
                        tenant_uuid,
                        job_uuid,
                        attempt - 1,
                        lost,
                        will_retry=True,
                        with_traceback=False,
                        next_at=timezone.now(),
                    )
                ]
            )
    # A transaction of its own: `execution_started` is stamped with now(), the transaction's start time, so it
    # must not share one with the lost attempt's end (stamped with clock_timestamp()).
    with transaction.atomic():
        job = _locked_job(tenant, job_id)
        if job is None or job.status in FINAL_STATUSES:
            return None
        if not (job.status == JobStatus.PROCESSING and job.meta.get("attempts") == attempt):
            tracking.record_started(job.tenant, job.job_id, attempt, worker_id=worker_id)
        data = job.meta.get("data")
        return (data if isinstance(data, dict) else {}), job.meta


def _is_running(job: Job, attempt: int) -> bool:
    return job.status == JobStatus.PROCESSING and job.meta.get("attempts") == attempt


def end_attempt(outcome: tracking.AttemptOutcome) -> bool:
    """Record how an attempt ended, unless a newer attempt, a final state or an earlier write of this very end
    already superseded it."""
    with transaction.atomic():
        job = _locked_job(str(outcome.tenant), str(outcome.job_id))
        if job is None or not _is_running(job, outcome.attempt):
            return False
        return tracking.record_finished([outcome]) > 0


def apply_writes(
    tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, writes: Iterable[dict[str, Any]]
) -> None:
    """A handler's steps and progress (see activities.RecordBuffer), in the order they happened; a step already
    recorded (same id) is not recorded again, progress of a job already final is ignored."""
    for write in writes:
        if write["kind"] == WriteKind.STEP:
            tracking.record_step(
                tenant,
                job_id,
                write["name"],
                write["status"],
                write.get("result"),
                attempt=attempt,
                detail_id=uuid.UUID(write["detailId"]),
                at=datetime.fromisoformat(write["at"]),
            )
        elif write["kind"] == WriteKind.PROGRESS:
            progress = write.get("progress")
            tracking.record_progress(
                tenant, job_id, None if progress is None else float(progress), write.get("message")
            )


def write_now(tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, writes: list[dict[str, Any]]) -> None:
    """A running handler's writes, made as they come (one transaction for the batch)."""
    with transaction.atomic():
        apply_writes(tenant, job_id, attempt, writes)


def settle_attempt(
    tenant: uuid.UUID,
    job_id: uuid.UUID,
    attempt: int,
    writes: list[dict[str, Any]],
    end: tracking.AttemptOutcome | None,
) -> bool:
    """An attempt's unwritten steps and progress, then its end (None: the workflow records it), in one
    transaction; the end only while that attempt is the one running. Whether the end was recorded now.

    With nothing but the end to write (a handler that wrote no step, or whose steps are written already) it
    is one statement."""
    if not writes:
        return end is not None and tracking.record_finished_if_running(end)
    with transaction.atomic():
        job = _locked_job(str(tenant), str(job_id))
        if job is None:
            return False
        apply_writes(tenant, job_id, attempt, writes)
        return end is not None and _is_running(job, attempt) and tracking.record_finished([end]) > 0


def end_of(
    tenant: uuid.UUID, job_id: uuid.UUID, attempt: int, end: dict[str, Any]
) -> tracking.AttemptOutcome:
    """The tracking outcome of an AttemptReport's fields (as they travel in workflow history)."""
    result = end.get("result")
    return tracking.AttemptOutcome(
        tenant=tenant,
        job_id=job_id,
        attempt=attempt,
        outcome=Outcome(end["outcome"]),
        result_json=None if result is None else json.dumps(result),
        error=end.get("error"),
        error_type=end.get("error_type"),
        traceback=end.get("traceback"),
        next_at=_time(end.get("next_at")),
        at=_time(end.get("ended_at")),
    )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def catch_up(req: RecordInput) -> bool:
    """Write what the workflow knows and the record does not, in one transaction (see RecordInput): safe to
    repeat, so Temporal may deliver it any number of times. Returns whether an end or a cancel was recorded."""
    tenant, job_id = uuid.UUID(req.tenant), uuid.UUID(req.job_id)
    with transaction.atomic():
        job = _locked_job(req.tenant, req.job_id)
        if job is None:
            return False
        apply_writes(tenant, job_id, req.attempt, req.writes)
        reason = (req.cancel or {}).get("reason") or outcomes.DEFAULT_CANCEL_REASON
        cancelled_by = (req.cancel or {}).get("cancelledBy")
        ended = False
        if req.end is not None and _is_running(job, req.attempt):
            if req.cancel is not None:
                tracking.record_cancel_requested(tenant, job_id, reason=reason, cancelled_by=cancelled_by)
            ended = tracking.record_finished([end_of(tenant, job_id, req.attempt, req.end)]) > 0
        elif req.cancel is not None and job.status in (JobStatus.PENDING, JobStatus.QUEUED):
            ended = (
                tracking.record_cancelled_unstarted(tenant, job_id, reason=reason, cancelled_by=cancelled_by)
                > 0
            )
        if ended and req.behind_since:
            lag = (timezone.now() - datetime.fromisoformat(req.behind_since)).total_seconds()
            tracking.record_lag(tenant, job_id, max(lag, 0.0))
        return ended


def finalize(req: FinalizeInput) -> bool:
    """End a job nobody recorded the end of (lost last attempt, cancelled before running); else nothing."""
    with transaction.atomic():
        job = _locked_job(req.tenant, req.job_id)
        if job is None or job.status in FINAL_STATUSES:
            return False
        if req.outcome == Outcome.CANCELLED and job.status in (JobStatus.PENDING, JobStatus.QUEUED):
            return (
                tracking.record_cancelled_unstarted(job.tenant, job.job_id, reason=req.error, cause=req.cause)
                > 0
            )
        attempts = int(job.meta.get("attempts") or 0)
        outcome = tracking.AttemptOutcome(
            tenant=job.tenant,
            job_id=job.job_id,
            attempt=max(attempts, 1),
            outcome=Outcome(req.outcome),
            error=req.error,
            error_type=req.error_type,
        )
        return tracking.record_finished([outcome]) > 0


def next_attempt_at(delay_ms: float) -> datetime:
    return timezone.now() + timedelta(milliseconds=delay_ms)


def register_worker(
    worker_id: str, host: str, pid: int, concurrency: int, job_names: list[str], queues: list[str]
) -> None:
    """List this Temporal worker beside the pgboss ones (the dashboard's workers page)."""
    now = timezone.now()
    Worker.objects.update_or_create(
        id=worker_id,
        defaults={"heartbeat_at": now},
        create_defaults={
            "backend": RUNNER_TYPE,
            "host": host,
            "pid": pid,
            "concurrency": concurrency,
            "job_names": job_names,
            "queues": queues,
            "started_at": now,
            "heartbeat_at": now,
        },
    )


def heartbeat_worker(worker_id: str, running_jobs: list[str]) -> None:
    Worker.objects.filter(id=worker_id).update(heartbeat_at=timezone.now(), running_jobs=running_jobs)


def unregister_worker(worker_id: str) -> None:
    Worker.objects.filter(id=worker_id).delete()


# -- the runner's record helpers (sync Django code, called by TemporalJobRunner) --------------------------------


def schedule_row(tenant: uuid.UUID, key: str) -> Schedule | None:
    return Schedule.objects.filter(tenant=tenant, key=key).first()


def is_finished(job_id: Any, tenant: uuid.UUID) -> bool:
    try:
        job = load_job(job_id, tenant)
        return job is not None and job.is_finished
    finally:
        # Runs on asgiref's executor thread, where no request cycle would ever close this connection.
        connections.close_all()


def is_live_temporal(job: Job, *, with_workflow: bool = True) -> bool:
    """A Temporal job not yet final (and, with `with_workflow`, whose workflow id is known)."""
    live = job.runner_type == RUNNER_TYPE and job.status in LIVE_STATUSES
    return live and (bool(job.external_id) or not with_workflow)


def reconcile(job: Job, closed: WorkflowExecutionStatus | None) -> Job:
    """The record after its workflow closed without recording the end (terminated, timed out): fixed now."""
    if closed is None:
        return job
    job.refresh_from_db()
    if job.status not in LIVE_STATUSES:
        return job
    if closed == WorkflowExecutionStatus.CANCELED:
        req = FinalizeInput(str(job.job_id), str(job.tenant), Outcome.CANCELLED, "Workflow cancelled")
    elif closed in _CLOSED_FAILURES:
        error = WorkflowClosed(f"The job's workflow {_CLOSED_FAILURES[closed]} before recording its end")
        req = FinalizeInput(
            str(job.job_id), str(job.tenant), Outcome.FAILED, outcomes.error_text(error), type(error).__name__
        )
    else:
        return job
    finalize(req)
    job.refresh_from_db()
    return job


def cancel_unstarted(job: Job, reason: str | None, cancelled_by: str | None) -> None:
    """A job no attempt has started yet is cancelled in the record at once (its workflow then skips it)."""
    if job.status in (JobStatus.PENDING, JobStatus.QUEUED):
        tracking.record_cancelled_unstarted(
            job.tenant, job.job_id, reason=reason or outcomes.DEFAULT_CANCEL_REASON, cancelled_by=cancelled_by
        )


def step_queued(req: StepQueuedInput) -> None:
    """A workflow step's child workflow started: a still pending record becomes queued, and one without the
    child's ids gets them (see `tracking.record_queued`)."""
    tracking.record_queued(
        uuid.UUID(req.tenant), uuid.UUID(req.job_id), external_id=req.external_id, external_run_id=req.run_id
    )
