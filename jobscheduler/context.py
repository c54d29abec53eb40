"""`current_job()`: what a running handler knows about its job, whichever backend runs it."""

from __future__ import annotations

import abc
import contextvars
import json
import uuid
from typing import Any

from .exceptions import InvalidJobData, JobCancelled
from .models import JobStatus

_current: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar("jobscheduler_job", default=None)


class JobContext(abc.ABC):
    """The running attempt of one job. Backends subclass it to persist progress and see cancellation."""

    def __init__(
        self, *, job_id: uuid.UUID, tenant: uuid.UUID, job_name: str, attempt: int, data: Any
    ) -> None:
        self.job_id = job_id
        self.tenant = tenant
        self.job_name = job_name
        self.attempt = attempt
        self.data = data
        self._cancelled = False
        self._dependency_results: dict[str, Any] | None = None

    @property
    def is_cancelled(self) -> bool:
        return self._cancelled or self._check_cancelled()

    def raise_if_cancelled(self) -> None:
        if self.is_cancelled:
            raise JobCancelled(f"Job {self.job_id} was cancelled")

    def progress(self, pct: float, message: str | None = None) -> None:
        """Persist progress (0-100) and an optional message; shown by get_job_status and the dashboard."""
        if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 <= pct <= 100:
            raise ValueError(f"progress must be a number from 0 to 100, got {pct!r}")
        self._save_progress(float(pct), None if message is None else str(message))

    def step(self, name: str, status: str = JobStatus.COMPLETED, result: Any = None) -> None:
        """Add a `job_details` row for a step of the handler's own."""
        if status not in JobStatus.values:
            raise ValueError(f"step status must be one of {', '.join(JobStatus.values)}, got {status!r}")
        try:
            result_json = None if result is None else json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidJobData(f"step result is not JSON-serialisable: {exc}") from None
        self._save_step(str(name)[:255], status, result_json)

    @property
    def dependency_results(self) -> dict[str, Any]:
        """For a workflow step: what each of its completed dependencies returned, by job id, in the order of
        its `after` list (a dependency that failed or was cancelled, for a step that runs anyway, is absent).
        Read once from the record, whichever backend ran them; {} for a job outside a workflow."""
        if self._dependency_results is None:
            self._dependency_results = _load_dependency_results(self.tenant, self.job_id)
        return self._dependency_results

    def mark_cancelled(self) -> None:
        self._cancelled = True

    # Backend hooks.
    def _check_cancelled(self) -> bool:
        return False

    @abc.abstractmethod
    def _save_progress(self, pct: float, message: str | None) -> None: ...

    @abc.abstractmethod
    def _save_step(self, name: str, status: str, result_json: str | None) -> None: ...


def _load_dependency_results(tenant: uuid.UUID, job_id: uuid.UUID) -> dict[str, Any]:
    from .models import Job, JobDetail

    job = Job.objects.filter(tenant=tenant, job_id=job_id).first()
    depends_on = [str(d) for d in (job.meta.get("dependsOn") or [])] if job else []
    if not depends_on:
        return {}
    completed = set(
        str(j)
        for j in Job.objects.filter(
            tenant=tenant, job_id__in=depends_on, status=JobStatus.COMPLETED
        ).values_list("job_id", flat=True)
    )
    results: dict[str, Any] = {}
    steps = JobDetail.objects.filter(
        tenant=tenant, job_id__in=list(completed), step_name="execution_completed"
    ).order_by("processed_at")
    for detail in steps:  # the last completion of each wins
        result = detail.result if isinstance(detail.result, dict) else {}
        results[str(detail.job_id)] = result.get("result")
    return {dep: results.get(dep) for dep in depends_on if dep in completed}


def current_job() -> JobContext:
    """The job the calling handler is running; a RuntimeError outside a handler."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("current_job() is only available inside a running job handler")
    return ctx


def activate(ctx: JobContext | None) -> contextvars.Token:
    return _current.set(ctx)


def deactivate(token: contextvars.Token) -> None:
    _current.reset(token)
