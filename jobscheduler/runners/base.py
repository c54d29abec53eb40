"""The runner interface both backends implement, and the values it returns."""

from __future__ import annotations

import abc
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async

from ..validation import system_metadata


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
    runner_type: str = "pgboss"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at and self.completed_at:
            return self.completed_at - self.started_at
        return None


class JobRunner(abc.ABC):
    """Schedules, inspects and cancels jobs on one backend.

    Every schedule call accepts `tenant_id` (else `data["tenantId"]`), `user_id` (else SYSTEM_USER_ID),
    `singleton_key`, `priority` and `metadata`, and validates everything before writing anything.
    """

    runner_type: str = ""
    #: True when this runner stands in for an unreachable Temporal (see JobRunnerFactory).
    fallback_active: bool = False

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
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult: ...

    @abc.abstractmethod
    def get_job_status(self, job_id: Any, tenant_id: Any) -> JobStatusInfo | None: ...

    @abc.abstractmethod
    def cancel_job(self, job_id: Any, tenant_id: Any) -> bool: ...

    @abc.abstractmethod
    def is_healthy(self) -> bool: ...

    @abc.abstractmethod
    def set_schedule_paused(self, schedule_id: Any, tenant_id: Any, paused: bool) -> bool:
        """Pause or resume a recurring schedule of this tenant; False when there is no such schedule."""

    @abc.abstractmethod
    def trigger_schedule(self, schedule_id: Any, tenant_id: Any) -> ScheduleJobResult | None:
        """Run a recurring schedule's job now, once, as its own `jobs` row; None when there is no such schedule."""

    def retry_job(self, job_id: Any, tenant_id: Any) -> ScheduleJobResult | None:
        """Re-enqueue a finished job's payload as a new job; None when the job is unknown or not finished."""
        from ..models import Job

        job_uuid, tenant_uuid = parse_uuid(job_id), parse_uuid(tenant_id)
        if job_uuid is None or tenant_uuid is None:
            return None
        job = Job.objects.filter(tenant=tenant_uuid, job_id=job_uuid).first()
        if job is None or not job.is_finished:
            return None
        data = job.meta.get("data")
        with system_metadata():
            return self.schedule_job(
                job.type,
                data if isinstance(data, dict) else {},
                tenant_id=job.tenant,
                user_id=job.user_id,
                metadata={"retryOf": str(job.job_id)},
            )

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

    async def acancel_job(self, job_id: Any, tenant_id: Any) -> bool:
        return await sync_to_async(self.cancel_job)(job_id, tenant_id)

    async def ais_healthy(self) -> bool:
        return await sync_to_async(self.is_healthy)()


def parse_uuid(value: Any) -> uuid.UUID | None:
    """A UUID, or None for anything that is not one (an unknown id is 'not found', not an error)."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def status_from_record(job: Any) -> JobStatusInfo:
    """The status of a `jobs` row as both backends report it."""
    meta = job.meta
    progress = meta.get("progress")
    return JobStatusInfo(
        status=job.status,
        progress=float(progress) if isinstance(progress, int | float) else None,
        error=meta.get("error") or meta.get("cancelReason") if job.status != "completed" else None,
        metadata=meta,
        created_at=job.created_at,
        started_at=_parse_time(meta.get("startedAt")),
        completed_at=_parse_time(meta.get("completedAt")),
        attempts=int(meta.get("attempts") or 0),
        runner_type=job.runner_type,
    )


def load_status(job_id: Any, tenant_id: Any) -> JobStatusInfo | None:
    from ..models import Job

    job_uuid, tenant_uuid = parse_uuid(job_id), parse_uuid(tenant_id)
    if job_uuid is None or tenant_uuid is None:
        return None
    job = Job.objects.filter(tenant=tenant_uuid, job_id=job_uuid).first()
    return status_from_record(job) if job else None
