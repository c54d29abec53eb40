"""Cancel, retry and schedule actions, shared by the dashboard views and the Django admin.

Each action goes to the runner of the backend that recorded the job or schedule
(`JobRunnerFactory.for_runner_type`), so a Temporal job is cancelled through Temporal even when this process
schedules new work on pgboss; while Temporal is unreachable that raises RunnerUnavailable (nothing is written),
which the bulk actions count and report. Callers have already checked the tenant and the permission, and say
who acts (`actor`): each action writes its audit entry (`jobscheduler.audit`) with what it did.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import audit
from ..audit import Actor
from ..exceptions import RunnerUnavailable, StepNotRetryable
from ..ids import parse_uuid
from ..models import AuditAction, Job, Schedule
from ..runners.factory import JobRunnerFactory

logger = logging.getLogger("jobscheduler.dashboard")


@dataclass(slots=True)
class BulkResult:
    """How many of the selected jobs an action applied to, and which new jobs a retry created."""

    done: int = 0
    skipped: int = 0
    new_job_ids: list[str] = field(default_factory=list)
    #: Why jobs could not be acted on because their backend was unreachable, one entry per job.
    unreachable: list[str] = field(default_factory=list)

    def unreachable_message(self) -> str:
        """ "" when every backend answered; else how many jobs were left alone, and the first reason."""
        if not self.unreachable:
            return ""
        return f"{len(self.unreachable)} job(s) could not be cancelled: {self.unreachable[0]}"


def cancel(job: Job, *, actor: Actor) -> bool:
    """Cancel a job that has not finished; False when it had already finished or the backend refused;
    RunnerUnavailable when its backend (Temporal) is unreachable (no audit entry: nothing was done)."""
    cancelled = _cancel(job, actor)
    audit.record(
        actor,
        AuditAction.CANCEL,
        tenant=job.tenant,
        target=str(job.job_id),
        count=int(cancelled),
        job_id=job.job_id,
    )
    return cancelled


def retry(job: Job, *, actor: Actor) -> str | None:
    """Re-enqueue a finished job's payload as a new job (on the configured backend); the new job's id or None."""
    new_id = _retry(job)
    audit.record(
        actor,
        AuditAction.RETRY,
        tenant=job.tenant,
        target=str(job.job_id),
        count=int(new_id is not None),
        job_id=job.job_id,
        detail={"newJobId": new_id} if new_id else {},
    )
    return new_id


def cancel_many(jobs: Iterable[Job], *, actor: Actor) -> BulkResult:
    outcome = BulkResult()
    for tenant, selected in _by_tenant(jobs).items():
        done = unreachable = 0
        for job in selected:
            try:
                done += _cancel(job, actor)
            except RunnerUnavailable as exc:
                outcome.unreachable.append(str(exc))
                unreachable += 1
        outcome.done += done
        outcome.skipped += len(selected) - done - unreachable
        extra = {"unreachable": unreachable} if unreachable else {}
        _record_bulk(actor, AuditAction.BULK_CANCEL, tenant, selected, done, **extra)
    return outcome


def retry_many(jobs: Iterable[Job], *, actor: Actor) -> BulkResult:
    outcome = BulkResult()
    for tenant, selected in _by_tenant(jobs).items():
        new_ids = [new_id for new_id in (_retry_unless_blocked(job) for job in selected) if new_id]
        outcome.done += len(new_ids)
        outcome.skipped += len(selected) - len(new_ids)
        outcome.new_job_ids += new_ids
        _record_bulk(actor, AuditAction.BULK_RETRY, tenant, selected, len(new_ids), newJobIds=new_ids)
    return outcome


def set_paused(schedule: Schedule, paused: bool, *, actor: Actor) -> bool:
    changed = JobRunnerFactory.for_runner_type(schedule.runner_type).set_schedule_paused(
        schedule.id, schedule.tenant, paused
    )
    audit.record(
        actor,
        AuditAction.PAUSE_SCHEDULE if paused else AuditAction.RESUME_SCHEDULE,
        tenant=schedule.tenant,
        target=schedule.key,
        count=int(bool(changed)),
        detail={"scheduleId": str(schedule.id)},
    )
    return changed


def run_now(schedule: Schedule, *, actor: Actor) -> str | None:
    """Fire a schedule's job once, now; the new job's id or None."""
    result = JobRunnerFactory.for_runner_type(schedule.runner_type).trigger_schedule(
        schedule.id, schedule.tenant
    )
    new_id = None if result is None else result.job_id
    audit.record(
        actor,
        AuditAction.RUN_SCHEDULE,
        tenant=schedule.tenant,
        target=schedule.key,
        count=int(new_id is not None),
        job_id=parse_uuid(new_id) if new_id else None,
        detail={"scheduleId": str(schedule.id)} | ({"newJobId": new_id} if new_id else {}),
    )
    return new_id


def _cancel(job: Job, actor: Actor) -> bool:
    """Cancel through the job's backend, recorded as cancelled by the actor (the job's `cancelledBy`)."""
    if job.is_finished:
        return False
    return JobRunnerFactory.for_runner_type(job.runner_type).cancel_job(
        job.job_id, job.tenant, cancelled_by=actor.name or None
    )


def _retry_unless_blocked(job: Job) -> str | None:
    """A bulk retry skips a workflow step cancelled because of a dependency: retrying that one resumes it."""
    try:
        return _retry(job)
    except StepNotRetryable:
        return None


def _retry(job: Job) -> str | None:
    """Re-enqueue a finished job's payload as a new job (on the configured backend; a workflow step on its
    workflow's); the new job's id or None. A step cancelled because of a dependency raises StepNotRetryable."""
    if not job.is_finished:
        return None
    # A workflow step is retried by the backend that runs its workflow, which resumes the steps it cancelled.
    runner = (
        JobRunnerFactory.for_runner_type(job.runner_type)
        if job.meta.get("workflowId")
        else JobRunnerFactory.get_instance()
    )
    result = runner.retry_job(job.job_id, job.tenant)
    if result is None:
        return None
    logger.info(
        "Retried job %s as %s",
        job.job_id,
        result.job_id,
        extra={"action": "dashboard_retry", "job_id": str(job.job_id), "new_job_id": result.job_id},
    )
    return result.job_id


def _by_tenant(jobs: Iterable[Job]) -> dict[uuid.UUID, list[Job]]:
    """A bulk selection per tenant, so each tenant's audit log shows only its own jobs."""
    found: dict[uuid.UUID, list[Job]] = defaultdict(list)
    for job in jobs:
        found[job.tenant].append(job)
    return found


def _record_bulk(
    actor: Actor, action: AuditAction, tenant: uuid.UUID, jobs: list[Job], done: int, **extra
) -> None:
    audit.record(
        actor,
        action,
        tenant=tenant,
        target=f"{len(jobs)} selected job(s)",
        count=done,
        detail={
            "jobIds": audit.job_ids(j.job_id for j in jobs),
            "skipped": len(jobs) - done - extra.get("unreachable", 0),
            **extra,
        },
    )


def jobs_by_ids(tenant: uuid.UUID, ids: Iterable[str], limit: int = 500) -> list[Job]:
    """The tenant's jobs among `ids` (ids of other tenants or garbage are silently dropped), at most `limit`."""
    wanted = [u for u in (parse_uuid(i) for i in ids) if u is not None][:limit]
    if not wanted:
        return []
    return list(Job.objects.for_tenant(tenant).filter(job_id__in=wanted))
