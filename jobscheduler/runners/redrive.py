"""Bulk redrive: retry, or cancel, every job of a tenant matching a selection, in bounded batches, audited.

Jobs are walked newest first in batches of `batch_size` (keyset on (created_at, job_id), so each batch reads only
its own rows and a job is visited once however the statuses change meanwhile). Each batch goes to the runner's
`retry_batch` / `cancel_batch`: one statement on pgboss (`queue/redrive.py`), one call per job on Temporal, which
has no bulk start; a workflow step goes through `retry_job` / `cancel_job` (which keep its workflow consistent). Retry, like `retry_job`,
re-enqueues each finished job as a new job on the configured backend; cancel goes to the backend that recorded
each job. One audit entry records who did it, when, the selection and how many jobs it applied to (also when it
stopped halfway: how many had been done).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from .. import audit
from ..exceptions import InvalidSelection, JobSchedulerError
from ..ids import parse_uuid
from ..models import FINAL_STATUSES, LIVE_STATUSES, AuditAction, Job
from ..outcomes import BULK_CANCEL_REASON
from ..selection import JobSelection
from ..states import RunnerType
from .factory import JobRunnerFactory

DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkOutcome:
    """`matched`: jobs of the selection the action could apply to (finished ones for retry, live ones for cancel);
    `done`: retried as new jobs, or cancelled (a running one: told to stop); `skipped`: the rest (no handler
    registered, already told to stop, finished meanwhile)."""

    matched: int = 0
    done: int = 0

    @property
    def skipped(self) -> int:
        return self.matched - self.done


def retry_matching(
    selection: JobSelection, tenant_id: Any, *, actor: Any, batch_size: int = DEFAULT_BATCH_SIZE
) -> BulkOutcome:
    tenant, size = _tenant(tenant_id), _size(batch_size)
    runner = JobRunnerFactory.get_instance()
    finished = selection.jobs(tenant).filter(status__in=FINAL_STATUSES)
    matched = done = 0
    try:
        # A workflow step's retry rejoins its workflow (runner.retry_job), one by one; plain jobs in batches.
        plain, steps = (
            finished.exclude(metadata__has_key="workflowId"),
            finished.filter(metadata__has_key="workflowId"),
        )
        for ids in _batches(plain, size):
            matched += len(ids)
            done += runner.retry_batch(tenant, ids)
        for ids in _batches(steps, size):
            matched += len(ids)
            done += sum(_retried(runner, job_id, tenant) for job_id in ids)
    finally:
        _audit(AuditAction.BULK_RETRY, actor, tenant, selection, matched, done)
    return BulkOutcome(matched=matched, done=done)


def cancel_matching(
    selection: JobSelection, tenant_id: Any, *, actor: Any, batch_size: int = DEFAULT_BATCH_SIZE
) -> BulkOutcome:
    tenant, size = _tenant(tenant_id), _size(batch_size)
    who = audit.actor_of(actor).name
    live = selection.jobs(tenant).filter(status__in=LIVE_STATUSES)
    pgboss = live.filter(runner_type=RunnerType.PGBOSS)
    matched = done = 0
    try:
        pgboss_runner = JobRunnerFactory.for_runner_type(RunnerType.PGBOSS)
        for ids in _batches(pgboss.exclude(metadata__has_key="workflowId"), size):
            matched += len(ids)
            done += pgboss_runner.cancel_batch(tenant, ids, cancelled_by=who)
        # Workflow steps go through cancel_job, which settles the steps that depend on them.
        for ids in _batches(pgboss.filter(metadata__has_key="workflowId"), size):
            matched += len(ids)
            done += sum(
                pgboss_runner.cancel_job(job_id, tenant, reason=BULK_CANCEL_REASON, cancelled_by=who)
                for job_id in ids
            )
        for ids in _batches(live.exclude(runner_type=RunnerType.PGBOSS), size):
            matched += len(ids)
            done += JobRunnerFactory.for_runner_type(RunnerType.TEMPORAL).cancel_batch(
                tenant, ids, cancelled_by=who
            )
    finally:
        _audit(AuditAction.BULK_CANCEL, actor, tenant, selection, matched, done)
    return BulkOutcome(matched=matched, done=done)


def _retried(runner: Any, job_id: uuid.UUID, tenant: uuid.UUID) -> bool:
    """A step whose retry is refused (a dependency must be retried first) is skipped, not an error."""
    try:
        return runner.retry_job(job_id, tenant) is not None
    except JobSchedulerError:
        return False


def _audit(
    action: AuditAction, actor: Any, tenant: uuid.UUID, selection: JobSelection, matched: int, done: int
):
    audit.record(
        audit.actor_of(actor),
        action,
        tenant=tenant,
        target=f"{done} jobs matching a filter",
        count=done,
        detail={"filter": selection.as_dict(), "matched": matched, "skipped": matched - done},
    )


def _batches(queryset: QuerySet[Job], size: int) -> Iterator[list[uuid.UUID]]:
    """The ids of `queryset`, newest first, `size` at a time (jobs without a creation time are never visited)."""
    ordered = queryset.filter(created_at__isnull=False).order_by("-created_at", "-job_id")
    rows = ordered.values_list("job_id", "created_at")
    after: tuple | None = None
    while True:
        page = rows
        if after is not None:
            created, job_id = after
            page = page.filter(Q(created_at__lt=created) | Q(created_at=created, job_id__lt=job_id))
            page = page.filter(created_at__lte=created)  # lets the index range start at the cursor
        batch = list(page[:size])
        if batch:
            yield [job_id for job_id, _ in batch]
        if len(batch) < size:
            return
        after = (batch[-1][1], batch[-1][0])


def _tenant(tenant_id: Any) -> uuid.UUID:
    tenant = parse_uuid(tenant_id)
    if tenant is None:
        raise InvalidSelection(f"A bulk action needs the tenant's id, got {tenant_id!r}")
    return tenant


def _size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 10_000:
        raise InvalidSelection(f"batch_size must be an integer from 1 to 10000, got {batch_size!r}")
    return batch_size
