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


class NotARunnableTask(JobHandlerNotFound):
    """A job named by a module path that this site's task backend cannot run."""

    def __init__(self, job_name: str, reason: str) -> None:
        self.job_name = job_name
        JobSchedulerError.__init__(self, f"Cannot run job {job_name}: {reason}")


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


class InvalidWorkflow(JobSchedulerError, ValueError):
    """The workflow is invalid."""


class StepNotRetryable(JobSchedulerError):
    """This workflow step cannot be retried."""


class RunnerUnavailable(JobSchedulerError):
    """The configured job runner cannot be reached."""


class JobCancelled(JobSchedulerError):
    """The job was cancelled."""


class JobTimeout(JobSchedulerError, TimeoutError):
    """The job attempt ran past its timeout."""


class AttemptLost(JobSchedulerError):
    """The attempt ended without its worker saying how: the worker died, lost its lease or timed out.

    Never raised: it names, for the task API's `TaskError.exception_class_path`, the failures the record
    holds that no Python exception caused (`LeaseExpired`, `AttemptLost`, Temporal's activity timeouts)."""


class ExtraNotInstalled(JobSchedulerError, ImportError):
    """An optional backend was chosen but the package it needs is not installed."""

    def __init__(self, extra: str, package: str) -> None:
        self.extra = extra
        self.package = package
        super().__init__(
            f"The {extra} backend needs the {package} package, which is not installed: "
            f"pip install 'django-jobscheduler[{extra}]'"
        )


class WorkflowClosed(JobSchedulerError):
    """The job's Temporal workflow closed before the record got the job's end."""


class MetricsUnavailable(JobSchedulerError):
    """prometheus-client is not installed: install the metrics extra (pip install "django-jobscheduler[metrics]")."""
