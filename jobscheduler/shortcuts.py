"""Module-level shortcuts: `jobscheduler.schedule_job(...)` is the process runner's `schedule_job(...)`.

`get_job_status` and `cancel_job` may leave out the tenant on a single-tenant site, as the schedule calls may.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .exceptions import TenantRequired
from .runners.base import JobStatusInfo, ScheduleJobResult
from .runners.factory import JobRunnerFactory
from .tenancy import default_tenant


def schedule_job(job_name: str, data: dict[str, Any], **options: Any) -> ScheduleJobResult:
    return JobRunnerFactory.get_instance().schedule_job(job_name, data, **options)


def schedule_job_at(
    job_name: str, data: dict[str, Any], run_at: datetime, **options: Any
) -> ScheduleJobResult:
    return JobRunnerFactory.get_instance().schedule_job_at(job_name, data, run_at, **options)


def schedule_recurring_job(
    job_name: str, data: dict[str, Any], cron: str | timedelta, **options: Any
) -> ScheduleJobResult:
    return JobRunnerFactory.get_instance().schedule_recurring_job(job_name, data, cron, **options)


def get_job_status(job_id: Any, tenant_id: Any = None) -> JobStatusInfo | None:
    return JobRunnerFactory.get_instance().get_job_status(job_id, _tenant(tenant_id))


def cancel_job(
    job_id: Any, tenant_id: Any = None, *, reason: str | None = None, cancelled_by: str | None = None
) -> bool:
    return JobRunnerFactory.get_instance().cancel_job(
        job_id, _tenant(tenant_id), reason=reason, cancelled_by=cancelled_by
    )


async def aschedule_job(job_name: str, data: dict[str, Any], **options: Any) -> ScheduleJobResult:
    return await JobRunnerFactory.get_instance().aschedule_job(job_name, data, **options)


async def aschedule_job_at(
    job_name: str, data: dict[str, Any], run_at: datetime, **options: Any
) -> ScheduleJobResult:
    return await JobRunnerFactory.get_instance().aschedule_job_at(job_name, data, run_at, **options)


async def aschedule_recurring_job(
    job_name: str, data: dict[str, Any], cron: str | timedelta, **options: Any
) -> ScheduleJobResult:
    return await JobRunnerFactory.get_instance().aschedule_recurring_job(job_name, data, cron, **options)


async def aget_job_status(job_id: Any, tenant_id: Any = None) -> JobStatusInfo | None:
    return await JobRunnerFactory.get_instance().aget_job_status(job_id, _tenant(tenant_id))


async def acancel_job(
    job_id: Any, tenant_id: Any = None, *, reason: str | None = None, cancelled_by: str | None = None
) -> bool:
    return await JobRunnerFactory.get_instance().acancel_job(
        job_id, _tenant(tenant_id), reason=reason, cancelled_by=cancelled_by
    )


def _tenant(tenant_id: Any) -> Any:
    """The caller's tenant, else the default tenant; TenantRequired on a site that requires tenants."""
    if tenant_id is not None:
        return tenant_id
    fallback = default_tenant()
    if fallback is None:
        raise TenantRequired()
    return fallback
