"""The runner interface both backends implement, and the values it returns."""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone as dj_timezone

from .. import queues
from ..ids import parse_uuid
from ..outcomes import BULK_CANCEL_REASON
from ..queues import QueueState
from ..states import RunnerType
from ..tracking import NewJob
from ..validation import system_metadata
from ..workflows import Workflow, WorkflowResult, WorkflowStatus, workflow_status_from_rows

if TYPE_CHECKING:
    from ..selection import JobSelection
    from ..uniqueness import Policy
    from .redrive import BulkOutcome


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleJobResult:
    """What a schedule call created: the `jobs` row (or schedule) id and the backend's own id for it."""

    job_id: str
    external_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStatusInfo:
    status: str
    progress: float | None = None
    error: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    attempts: int = 0
    runner_type: str = RunnerType.PGBOSS

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.completed_at:
            return self.completed_at - self.started_at
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class HandOver:
    """A job one backend recorded (`pending`, payload and metadata included) but could not start because it is
    unreachable, for another backend to run under the same id (the Temporal -> pgboss fallback)."""

    job: NewJob
    from_runner: RunnerType
    singleton_key: str | None
    run_at: datetime | None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnservedQueue:
    """Work that waits where no live worker takes it: its jobs stay `queued` until someone starts one."""

    runner_type: RunnerType
    #: pgboss: a job name (pgboss workers serve job names); Temporal: a task queue.
    queue: str
    #: Jobs waiting there (pgboss: ready jobs, counted among the first QUEUE_SCAN_LIMIT; Temporal: the server's
    #: approximate backlog of workflow and activity tasks).
    waiting: int
    #: What to run to serve it.
    fix: str

    @property
    def message(self) -> str:
        what = "task queue" if self.runner_type == RunnerType.TEMPORAL else "job"
        return (
            f"No live {self.runner_type} worker serves {what} {self.queue!r} "
            f"({self.waiting} waiting): {self.fix}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "runner_type": str(self.runner_type),
            "queue": self.queue,
            "waiting": self.waiting,
            "fix": self.fix,
            "message": self.message,
        }


class JobRunner(abc.ABC):
    """Schedules, inspects and cancels jobs on one backend.

    Every schedule call accepts `tenant_id` (else `data["tenantId"]`), `user_id` (else SYSTEM_USER_ID),
    `singleton_key`, `priority`, `queue` (else the handler's queue, else "default"), `unique` (a Unique,
    Throttle or Debounce policy, see uniqueness.py) and `metadata`, and validates everything before writing
    anything.
    """

    runner_type: RunnerType
    #: True when this runner stands in for an unreachable Temporal (see JobRunnerFactory).
    fallback_active: bool = False
    #: Why the fallback happened (shown on the dashboard), when `fallback_active`.
    fallback_reason: str | None = None

    def close(self) -> None:  # noqa: B027 - most runners hold nothing to release
        """Release what the runner holds (connections, threads); the runner is not used afterwards."""

    #: Set (by the fallback) on a backend that records a job before it can start it (Temporal): called with a
    #: job the backend could not be reached to start, instead of recording it failed; gives the caller's result.
    on_unreachable: Callable[[HandOver], ScheduleJobResult | None] | None = None

    @property
    def unreachable_reason(self) -> str | None:
        """Why the backend was last found unreachable; None while it answers (pgboss: the site's own database,
        never tracked)."""
        return None

    def take_over(self, handover: HandOver) -> ScheduleJobResult | None:
        """Run a job another backend recorded but could not start, under the same id; None when this backend
        does not take jobs over (only pgboss does: it is the fallback)."""
        return None

    def backend(self, runner_type: str) -> JobRunner | None:
        """The runner this one uses for jobs and schedules recorded with `runner_type`; None when it has none
        (the fallback runner holds one of each)."""
        return self if runner_type == self.runner_type else None

    def ensure_reachable(self) -> JobRunner:
        """This runner, or RunnerUnavailable when its backend does not answer (pgboss is the site's own
        database: always this runner)."""
        return self

    @abc.abstractmethod
    def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        queue: str | None = None,
        unique: Policy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult: ...

    @abc.abstractmethod
    def schedule_job_at(
        self,
        job_name: str,
        data: dict[str, Any],
        run_at: datetime,
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        queue: str | None = None,
        unique: Policy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult: ...

    @abc.abstractmethod
    def schedule_recurring_job(
        self,
        job_name: str,
        data: dict[str, Any],
        cron: str | timedelta,
        *,
        timezone: str = "UTC",
        schedule_key: str | None = None,
        tenant_id: Any = None,
        user_id: Any = None,
        queue: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult: ...

    @abc.abstractmethod
    def get_job_status(self, job_id: Any, tenant_id: Any) -> JobStatusInfo | None: ...

    @abc.abstractmethod
    def cancel_job(
        self, job_id: Any, tenant_id: Any, *, reason: str | None = None, cancelled_by: str | None = None
    ) -> bool:
        """Cancel a job that has not finished (an id of a recurring schedule deletes the schedule); False when
        there is nothing to cancel. `reason` (default "Cancelled by request") and `cancelled_by` (who asked) are
        recorded as the job's `cancelReason` and `cancelledBy`."""

    def is_healthy(self) -> bool:
        """The backend answers and no waiting work lacks a live worker (see `unserved_queues`)."""
        return self.is_reachable() and not self.unserved_queues()

    @abc.abstractmethod
    def is_reachable(self) -> bool:
        """Whether the backend answers (pgboss: the database; Temporal: its frontend)."""

    @abc.abstractmethod
    def unserved_queues(self) -> list[UnservedQueue]:
        """Where jobs wait that no live worker serves: a job there stays `queued` forever until one starts.
        Empty when the backend cannot be asked (see `is_reachable`)."""

    @abc.abstractmethod
    def set_schedule_paused(self, schedule_id: Any, tenant_id: Any, paused: bool) -> bool:
        """Pause or resume a recurring schedule of this tenant; False when there is no such schedule."""

    def trigger_schedule(self, schedule_id: Any, tenant_id: Any) -> ScheduleJobResult | None:
        """Run a recurring schedule's job now, once, as its own `jobs` row linked to the schedule (its
        `scheduleId` and `scheduleKey`); None when this backend has no such schedule for the tenant."""
        from ..models import Schedule

        schedule = self.find_schedule(schedule_id, tenant_id)
        if schedule is None:
            return None
        with transaction.atomic(), system_metadata():
            result = self._schedule_run_now(schedule)
            now = dj_timezone.now()
            Schedule.objects.filter(pk=schedule.pk).update(
                last_run_at=now, last_job_id=uuid.UUID(result.job_id), updated_at=now
            )
        return result

    @abc.abstractmethod
    def _schedule_run_now(self, schedule: Any) -> ScheduleJobResult:
        """Schedule one run of `schedule` now, linked to it (its id in the run's `scheduleId`)."""

    def find_schedule(self, schedule_id: Any, tenant_id: Any) -> Any:
        """This backend's schedule with this id in this tenant, or None."""
        from ..models import Schedule

        sid, tenant = parse_uuid(schedule_id), parse_uuid(tenant_id)
        if sid is None or tenant is None:
            return None
        return Schedule.objects.filter(pk=sid, tenant=tenant, runner_type=self.runner_type).first()

    # -- workflows ------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def schedule_workflow(self, workflow: Workflow) -> WorkflowResult:
        """Validate and schedule every step of `workflow` (see jobscheduler.workflows); nothing is written when
        it is invalid. The rows join the caller's transaction (Temporal starts the workflow after the commit)."""

    @abc.abstractmethod
    def cancel_workflow(self, workflow_id: Any, tenant_id: Any) -> bool:
        """Cancel every unfinished step of this tenant's workflow; False when there is none."""

    @abc.abstractmethod
    def _retry_workflow_step(self, job: Any) -> ScheduleJobResult:
        """Retry a finished step of a workflow as a new job of it and resume the steps its failure cancelled."""

    def get_workflow_status(self, workflow_id: Any, tenant_id: Any) -> WorkflowStatus | None:
        """The workflow and each step's status, from the record (the same on both backends); None when this
        tenant has no such workflow."""
        from ..models import Job
        from ..models import Workflow as WorkflowRow

        wid, tenant = parse_uuid(workflow_id), parse_uuid(tenant_id)
        if wid is None or tenant is None:
            return None
        row = WorkflowRow.objects.filter(pk=wid, tenant=tenant).first()
        if row is None:
            return None
        jobs = Job.objects.filter(tenant=tenant).in_workflow(wid).order_by("created_at", "job_id")
        return workflow_status_from_rows(str(wid), row.name, list(jobs))

    def retry_job(self, job_id: Any, tenant_id: Any) -> ScheduleJobResult | None:
        """Re-enqueue a finished job's payload as a new job, in the job's queue; None when the job is unknown or
        not finished.

        A workflow step's retry joins its workflow and resumes the steps its failure cancelled."""
        job = load_job(job_id, tenant_id)
        if job is None or not job.is_finished:
            return None
        if job.meta.get("workflowId"):
            return self._retry_workflow_step(job)
        data = job.meta.get("data")
        queue = job.meta.get("queue")
        with system_metadata():
            return self.schedule_job(
                job.type,
                data if isinstance(data, dict) else {},
                tenant_id=job.tenant,
                user_id=job.user_id,
                queue=queue if isinstance(queue, str) else None,
                metadata={"retryOf": str(job.job_id)},
            )

    # -- bulk redrive ---------------------------------------------------------------------------------------

    def retry_jobs(
        self, selection: JobSelection, tenant_id: Any, *, actor: Any = None, batch_size: int = 1000
    ) -> BulkOutcome:
        """Re-enqueue every finished job of the tenant matching `selection` as a new job (as `retry_job` does),
        in batches of `batch_size`, on this process's configured backend; recorded in the audit log."""
        from .redrive import retry_matching

        return retry_matching(selection, tenant_id, actor=actor, batch_size=batch_size)

    def cancel_jobs(
        self, selection: JobSelection, tenant_id: Any, *, actor: Any = None, batch_size: int = 1000
    ) -> BulkOutcome:
        """Cancel every live job of the tenant matching `selection`, each through the backend that recorded it,
        in batches of `batch_size`; recorded in the audit log."""
        from .redrive import cancel_matching

        return cancel_matching(selection, tenant_id, actor=actor, batch_size=batch_size)

    def retry_batch(self, tenant: uuid.UUID, job_ids: list[uuid.UUID]) -> int:
        """Retry these finished jobs of the tenant as new jobs (one bounded batch of a bulk retry); how many were.
        One by one here; a backend with a bulk statement does it in one."""
        return sum(self.retry_job(job_id, tenant) is not None for job_id in job_ids)

    def cancel_batch(
        self, tenant: uuid.UUID, job_ids: list[uuid.UUID], *, cancelled_by: str | None = None
    ) -> int:
        """Cancel these live jobs of the tenant (one bounded batch of a bulk cancel); how many were."""
        return sum(
            self.cancel_job(job_id, tenant, reason=BULK_CANCEL_REASON, cancelled_by=cancelled_by)
            for job_id in job_ids
        )

    async def aretry_jobs(self, selection: JobSelection, tenant_id: Any, **options: Any) -> BulkOutcome:
        return await sync_to_async(self.retry_jobs)(selection, tenant_id, **options)

    async def acancel_jobs(self, selection: JobSelection, tenant_id: Any, **options: Any) -> BulkOutcome:
        return await sync_to_async(self.cancel_jobs)(selection, tenant_id, **options)

    # -- queues (their live settings are in the database, shared by both backends) ---------------------------

    def pause_queue(self, name: str, *, actor: Any = None) -> QueueState:
        """Stop starting jobs of the queue on every worker; waiting jobs stay, enqueueing still works, running
        jobs finish. Every queue change is recorded in the audit log (`actor`: who did it)."""
        return queues.set_paused(name, True, actor=actor)

    def resume_queue(self, name: str, *, actor: Any = None) -> QueueState:
        return queues.set_paused(name, False, actor=actor)

    def set_queue_limits(
        self,
        name: str,
        *,
        concurrency: int | None = queues.UNCHANGED,
        tenant_concurrency: int | None = queues.UNCHANGED,
        rate_limit: str | queues.RateLimit | None = queues.UNCHANGED,
        actor: Any = None,
    ) -> QueueState:
        """Change the queue's live limits on every worker (None removes a limit, an omitted one stays):
        `concurrency`, the most jobs of the queue running at once across all workers; `tenant_concurrency`, the
        most per tenant; `rate_limit`, the most starts per period ("10/s", "100/m", "5/10s"). Jobs already running
        are not stopped; from when this returns, no job starts while the queue (or its tenant) is at a limit."""
        return queues.set_limits(
            name,
            actor=actor,
            concurrency=concurrency,
            tenant_concurrency=tenant_concurrency,
            rate_limit=rate_limit,
        )

    def reset_queue(self, name: str, *, actor: Any = None) -> QueueState:
        """Put the queue's limits and paused flag back to its JOBSCHEDULER["QUEUES"] entry."""
        return queues.reset_queue(name, actor=actor)

    def get_queue(self, name: str) -> QueueState:
        return queues.get_queue(name)

    def list_queues(self) -> list[QueueState]:
        """Queues with live settings, and every queue a registered handler names."""
        from ..registry import JobHandlerRegistry

        return queues.list_queues(JobHandlerRegistry.queue_names())

    async def apause_queue(self, name: str, **options: Any) -> QueueState:
        return await sync_to_async(self.pause_queue)(name, **options)

    async def aresume_queue(self, name: str, **options: Any) -> QueueState:
        return await sync_to_async(self.resume_queue)(name, **options)

    async def aset_queue_limits(self, name: str, **limits: Any) -> QueueState:
        return await sync_to_async(self.set_queue_limits)(name, **limits)

    async def areset_queue(self, name: str, **options: Any) -> QueueState:
        return await sync_to_async(self.reset_queue)(name, **options)

    async def aget_queue(self, name: str) -> QueueState:
        return await sync_to_async(self.get_queue)(name)

    async def alist_queues(self) -> list[QueueState]:
        return await sync_to_async(self.list_queues)()

    # Async twins, Django style. Backends with native async code override them.
    async def aschedule_job(self, job_name: str, data: dict[str, Any], **options: Any) -> ScheduleJobResult:
        return await sync_to_async(self.schedule_job)(job_name, data, **options)

    async def aschedule_job_at(
        self, job_name: str, data: dict[str, Any], run_at: datetime, **options: Any
    ) -> ScheduleJobResult:
        return await sync_to_async(self.schedule_job_at)(job_name, data, run_at, **options)

    async def aschedule_recurring_job(
        self, job_name: str, data: dict[str, Any], cron: str | timedelta, **options: Any
    ) -> ScheduleJobResult:
        return await sync_to_async(self.schedule_recurring_job)(job_name, data, cron, **options)

    async def aget_job_status(self, job_id: Any, tenant_id: Any) -> JobStatusInfo | None:
        return await sync_to_async(self.get_job_status)(job_id, tenant_id)

    async def acancel_job(
        self, job_id: Any, tenant_id: Any, *, reason: str | None = None, cancelled_by: str | None = None
    ) -> bool:
        return await sync_to_async(self.cancel_job)(
            job_id, tenant_id, reason=reason, cancelled_by=cancelled_by
        )

    async def ais_healthy(self) -> bool:
        return await sync_to_async(self.is_healthy)()

    async def aschedule_workflow(self, workflow: Workflow) -> WorkflowResult:
        return await sync_to_async(self.schedule_workflow)(workflow)

    async def aget_workflow_status(self, workflow_id: Any, tenant_id: Any) -> WorkflowStatus | None:
        return await sync_to_async(self.get_workflow_status)(workflow_id, tenant_id)

    async def acancel_workflow(self, workflow_id: Any, tenant_id: Any) -> bool:
        return await sync_to_async(self.cancel_workflow)(workflow_id, tenant_id)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def status_from_record(job: Any) -> JobStatusInfo:
    """The status of a `jobs` row as both backends report it."""
    from ..models import JobStatus

    meta = job.meta
    progress = meta.get("progress")
    return JobStatusInfo(
        status=job.status,
        progress=float(progress) if isinstance(progress, int | float) else None,
        error=meta.get("error") or meta.get("cancelReason") if job.status != JobStatus.COMPLETED else None,
        metadata=meta,
        created_at=job.created_at,
        started_at=_parse_time(meta.get("startedAt")),
        completed_at=_parse_time(meta.get("completedAt")),
        attempts=int(meta.get("attempts") or 0),
        runner_type=job.runner_type,
    )


def load_job(job_id: Any, tenant_id: Any) -> Any:
    """The `jobs` row with this id in this tenant, or None (also for ids that are not UUIDs)."""
    from ..models import Job

    job_uuid, tenant_uuid = parse_uuid(job_id), parse_uuid(tenant_id)
    if job_uuid is None or tenant_uuid is None:
        return None
    return Job.objects.filter(tenant=tenant_uuid, job_id=job_uuid).first()


def load_status(job_id: Any, tenant_id: Any) -> JobStatusInfo | None:
    job = load_job(job_id, tenant_id)
    return status_from_record(job) if job else None
