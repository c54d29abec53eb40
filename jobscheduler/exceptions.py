"""Errors a user of django-jobscheduler can hit.

Each class's docstring is its default message. Every validation error is raised before anything is written.
"""

from __future__ import annotations


class JobSchedulerError(Exception):
    """A job scheduler error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class JobHandlerNotFound(JobSchedulerError, LookupError):
    """No handler registered for this job."""

    def __init__(self, job_name: str) -> None:
        self.job_name = job_name
        super().__init__(f"No handler registered for job: {job_name}")


class HandlerAlreadyRegistered(JobSchedulerError):
    """A handler is already registered under this name."""

    def __init__(self, job_name: str) -> None:
        self.job_name = job_name
        super().__init__(
            f"A handler is already registered for job: {job_name} (pass replace=True to replace it)"
        )


class InvalidJobData(JobSchedulerError, ValueError):
    """Job data must be a JSON object."""


class PayloadTooLarge(JobSchedulerError, ValueError):
    """The job payload is larger than MAX_PAYLOAD_BYTES."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"Job payload is {size} bytes, over the limit of {limit} bytes (MAX_PAYLOAD_BYTES)")


class TenantRequired(JobSchedulerError, ValueError):
    """A tenant is required: pass tenant_id=... or put "tenantId" in the job data."""


class InvalidSchedule(JobSchedulerError, ValueError):
    """The schedule is invalid."""


class InvalidRetryPolicy(JobSchedulerError, ValueError):
    """The retry policy is invalid."""


class InvalidQueue(JobSchedulerError, ValueError):
    """The queue name or its limits are invalid."""


class InvalidSelection(JobSchedulerError, ValueError):
    """The selection of jobs (a bulk action's filter) is invalid."""


class RunnerUnavailable(JobSchedulerError):
    """The configured job runner cannot be reached."""


class JobCancelled(JobSchedulerError):
    """The job was cancelled."""


class JobTimeout(JobSchedulerError, TimeoutError):
    """The job attempt ran past its timeout."""
