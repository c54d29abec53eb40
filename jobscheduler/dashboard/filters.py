"""The history table's filter form (django-filter): status, type, runner, workflow, time ranges and id search.

Every filter narrows a queryset that is already scoped to the viewer's tenant; none of them can widen it.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q, QuerySet

from ..ids import parse_uuid
from ..models import FINAL_STATUSES, Job
from ..runners.factory import RUNNER_CLASSES
from .metrics import DISPLAY_STATUSES

STATUS_GROUPS = {
    "live": ("pending", "queued", "processing", "active"),
    "finished": tuple(str(s) for s in FINAL_STATUSES),
}


def _status_choices() -> list[tuple[str, str]]:
    return [(str(s), str(s).capitalize()) for s in DISPLAY_STATUSES] + [
        ("live", "Live (pending, queued, processing)"),
        ("finished", "Finished (completed, failed, cancelled)"),
    ]


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M")


class JobFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_search", label="Job or external id")
    status = django_filters.ChoiceFilter(choices=_status_choices, method="filter_status", empty_label="Any")
    type = django_filters.CharFilter(field_name="type", label="Job type")
    runner = django_filters.ChoiceFilter(
        field_name="runner_type",
        choices=[(k, k) for k in sorted(RUNNER_CLASSES)],
        empty_label="Any",
        label="Runner",
    )
    workflow = django_filters.UUIDFilter(method="filter_workflow", label="Workflow id")
    created_after = django_filters.DateTimeFilter(
        field_name="created_at", lookup_expr="gte", label="Created from", widget=DateTimeLocalInput()
    )
    created_before = django_filters.DateTimeFilter(
        field_name="created_at", lookup_expr="lt", label="Created until", widget=DateTimeLocalInput()
    )
    finished_after = django_filters.DateTimeFilter(
        method="filter_finished_after", label="Finished from", widget=DateTimeLocalInput()
    )
    finished_before = django_filters.DateTimeFilter(
        method="filter_finished_before", label="Finished until", widget=DateTimeLocalInput()
    )

    class Meta:
        model = Job
        fields: list[str] = []

    def filter_search(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        """An exact job id, or an exact external id (the Temporal workflow id, the queue id)."""
        value = value.strip()
        if not value:
            return queryset
        job_id = parse_uuid(value)
        match = Q(external_id=value)
        if job_id is not None:
            match |= Q(job_id=job_id)
        return queryset.filter(match)

    def filter_workflow(self, queryset: QuerySet[Job], name: str, value) -> QuerySet[Job]:
        """The steps of one workflow (the partial index on `metadata->>'workflowId'`)."""
        return queryset.in_workflow(value)

    def filter_status(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        if value in STATUS_GROUPS:
            return queryset.filter(status__in=STATUS_GROUPS[value])
        if value == "processing":
            return queryset.filter(status__in=("processing", "active"))
        return queryset.filter(status=value)

    # A job's finish time is written to `updated_at` and `completedAt` together when it reaches a final state.
    def filter_finished_after(self, queryset: QuerySet[Job], name: str, value) -> QuerySet[Job]:
        return queryset.filter(status__in=FINAL_STATUSES, updated_at__gte=value)

    def filter_finished_before(self, queryset: QuerySet[Job], name: str, value) -> QuerySet[Job]:
        return queryset.filter(status__in=FINAL_STATUSES, updated_at__lt=value)
