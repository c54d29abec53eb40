"""The querysets behind the history table and the detail page, always scoped to one tenant.

The history list never loads `metadata` (it holds the payload, possibly large): it selects the plain columns
and extracts only the few metadata keys it shows (`metadata ->> 'attempts'` and so on) in SQL.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import (
    Case,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    QuerySet,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from ..models import FINAL_STATUSES, Job, JobDetail

LIST_COLUMNS = (
    "job_id",
    "tenant",
    "type",
    "status",
    "runner_type",
    "created_at",
    "updated_at",
    "external_id",
)


def _meta_time(key: str) -> Cast:
    return Cast(KeyTextTransform(key, "metadata"), DateTimeField())


DURATION = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


def history_annotations() -> dict[str, Any]:
    """Started, finished, attempts, progress and error extracted from `metadata` in SQL (never the whole column)."""
    return {
        "started_at": _meta_time("startedAt"),
        "finished_at": Case(
            When(status__in=FINAL_STATUSES, then=_meta_time("completedAt")), output_field=DateTimeField()
        ),
        "attempts": Cast(KeyTextTransform("attempts", "metadata"), IntegerField()),
        "progress": Cast(KeyTextTransform("progress", "metadata"), FloatField()),
        "error": KeyTextTransform("error", "metadata"),
    }


def history(tenant: uuid.UUID | None) -> QuerySet[Job]:
    """The tenant's jobs for the table: plain columns plus the extracted keys and the duration."""
    if tenant is None:
        return Job.objects.none()
    return (
        Job.objects.for_tenant(tenant)
        .only(*LIST_COLUMNS)
        .annotate(**history_annotations())
        .annotate(duration=DURATION)
        .order_by("-created_at")
    )


def job_for_tenant(tenant: uuid.UUID | None, job_id: uuid.UUID) -> Job | None:
    """The full job row, or None when it does not exist in this tenant (the caller answers 404)."""
    if tenant is None:
        return None
    return Job.objects.for_tenant(tenant).filter(job_id=job_id).first()


def steps(job: Job) -> QuerySet[JobDetail]:
    """The job's `job_details` rows in the order they happened (tenant-qualified for the composite index)."""
    return JobDetail.objects.filter(tenant=job.tenant, job_id=job.job_id).order_by(
        "processed_at", "detail_id"
    )


def workflow_for_tenant(tenant: uuid.UUID | None, workflow_id: uuid.UUID) -> Any:
    """The workflow row and its steps' `jobs` rows, in the order they were added; None outside the tenant."""
    from ..models import Workflow

    if tenant is None:
        return None
    row = Workflow.objects.filter(tenant=tenant, pk=workflow_id).first()
    if row is None:
        return None
    steps = Job.objects.filter(tenant=tenant).in_workflow(workflow_id).order_by("created_at", "job_id")
    return row, list(steps)
