"""Cancel, retry and schedule actions, shared by the dashboard views and the Django admin.

Each action goes to the runner of the backend that recorded the job or schedule
(`JobRunnerFactory.for_runner_type`), so a Temporal job is cancelled through Temporal even when this process
schedules new work on pgboss; while Temporal is unreachable that raises RunnerUnavailable (nothing is written),
which the bulk actions count and report. Callers have already checked the tenant and the permission.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..exceptions import RunnerUnavailable
from ..ids import parse_uuid
from ..models import Job, Schedule
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


def cancel(job: Job, cancelled_by: str | None = None) -> bool:
    """Cancel a job that has not finished, recording who asked; False when it had already finished or the
    backend refused; RunnerUnavailable when its backend (Temporal) is unreachable."""
    if job.is_finished:
        return False
    return JobRunnerFactory.for_runner_type(job.runner_type).cancel_job(
        job.job_id, job.tenant, cancelled_by=cancelled_by
    )


def retry(job: Job) -> str | None:
    """Re-enqueue a finished job's payload as a new job (on the configured backend); the new job's id or None."""
    if not job.is_finished:
        return None
    result = JobRunnerFactory.get_instance().retry_job(job.job_id, job.tenant)
    if result is None:
        return None
    logger.info(
        "Retried job %s as %s",
        job.job_id,
        result.job_id,
        extra={"action": "dashboard_retry", "job_id": str(job.job_id), "new_job_id": result.job_id},
    )
    return result.job_id


def cancel_many(jobs: Iterable[Job], cancelled_by: str | None = None) -> BulkResult:
    outcome = BulkResult()
    for job in jobs:
        try:
            cancelled = cancel(job, cancelled_by)
        except RunnerUnavailable as exc:
            outcome.unreachable.append(str(exc))
            continue
        if cancelled:
            outcome.done += 1
        else:
            outcome.skipped += 1
    return outcome


def retry_many(jobs: Iterable[Job]) -> BulkResult:
    outcome = BulkResult()
    for job in jobs:
        new_id = retry(job)
        if new_id:
            outcome.done += 1
            outcome.new_job_ids.append(new_id)
        else:
            outcome.skipped += 1
    return outcome


def set_paused(schedule: Schedule, paused: bool) -> bool:
    return JobRunnerFactory.for_runner_type(schedule.runner_type).set_schedule_paused(
        schedule.id, schedule.tenant, paused
    )


def run_now(schedule: Schedule) -> str | None:
    """Fire a schedule's job once, now; the new job's id or None."""
    result = JobRunnerFactory.for_runner_type(schedule.runner_type).trigger_schedule(
        schedule.id, schedule.tenant
    )
    return None if result is None else result.job_id


def jobs_by_ids(tenant: uuid.UUID, ids: Iterable[str], limit: int = 500) -> list[Job]:
    """The tenant's jobs among `ids` (ids of other tenants or garbage are silently dropped), at most `limit`."""
    wanted = [u for u in (parse_uuid(i) for i in ids) if u is not None][:limit]
    if not wanted:
        return []
    return list(Job.objects.for_tenant(tenant).filter(job_id__in=wanted))
