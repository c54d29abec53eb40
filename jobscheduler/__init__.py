"""django-jobscheduler: background jobs for Django on PostgreSQL (pgboss) or Temporal, one monitoring record.

Public names are loaded lazily so that listing "jobscheduler" in INSTALLED_APPS imports nothing that needs the
app registry.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "JobRunnerFactory": "jobscheduler.runners.factory",
    "JobRunner": "jobscheduler.runners.base",
    "ScheduleJobResult": "jobscheduler.runners.base",
    "JobStatusInfo": "jobscheduler.runners.base",
    "JobHandlerRegistry": "jobscheduler.registry",
    "RetryPolicy": "jobscheduler.registry",
    "job_handler": "jobscheduler.registry",
    "JobScheduler": "jobscheduler.legacy",
    "current_job": "jobscheduler.context",
    "Workflow": "jobscheduler.workflows",
    "WorkflowResult": "jobscheduler.workflows",
    "WorkflowStatus": "jobscheduler.workflows",
    "schedule_job": "jobscheduler.shortcuts",
    "schedule_job_at": "jobscheduler.shortcuts",
    "schedule_recurring_job": "jobscheduler.shortcuts",
    "get_job_status": "jobscheduler.shortcuts",
    "cancel_job": "jobscheduler.shortcuts",
    "aschedule_job": "jobscheduler.shortcuts",
    "aschedule_job_at": "jobscheduler.shortcuts",
    "aschedule_recurring_job": "jobscheduler.shortcuts",
    "aget_job_status": "jobscheduler.shortcuts",
    "acancel_job": "jobscheduler.shortcuts",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'jobscheduler' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
