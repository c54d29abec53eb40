"""The history table's filter form (django-filter): status, type, queue, runner, workflow, time ranges, id and
payload search.

The form only reads and checks the parameters; what they select is `JobSelection` (selection.py), the same
definition bulk retry and cancel apply, so "every job matching this filter" means what the table shows. Every
filter narrows a queryset that is already scoped to the viewer's tenant; none of them can widen it.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import QuerySet

from ..exceptions import InvalidQueue, InvalidSelection
from ..models import Job
from ..queues import check_queue_name
from ..runners.factory import RUNNER_CLASSES
from ..selection import JobSelection, payload_pairs
from .metrics import DISPLAY_STATUSES

#: Form field -> JobSelection field, where the names differ.
SELECTION_NAMES = {"q": "search"}


def _status_choices() -> list[tuple[str, str]]:
    return [(str(s), str(s).capitalize()) for s in DISPLAY_STATUSES] + [
        ("live", "Live (pending, queued, processing)"),
        ("finished", "Finished (completed, failed, cancelled)"),
    ]


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%dT%H:%M")


class QueueNameField(forms.CharField):
    def validate(self, value: str) -> None:
        super().validate(value)
        if value:
            try:
                check_queue_name(value)
            except InvalidQueue as exc:
                raise forms.ValidationError(str(exc)) from None


class QueueFilter(django_filters.CharFilter):
    field_class = QueueNameField


class PayloadField(forms.CharField):
    def validate(self, value: str) -> None:
        super().validate(value)
        if value:
            try:
                payload_pairs(value)
            except InvalidSelection as exc:
                raise forms.ValidationError(str(exc)) from None


class PayloadFilter(django_filters.CharFilter):
    field_class = PayloadField


class JobFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label="Job or external id")
    payload = PayloadFilter(label="Payload contains")
    status = django_filters.ChoiceFilter(choices=_status_choices, empty_label="Any")
    type = django_filters.CharFilter(label="Job type")
    queue = QueueFilter(label="Queue")
    runner = django_filters.ChoiceFilter(
        choices=[(k, k) for k in sorted(RUNNER_CLASSES)], empty_label="Any", label="Runner"
    )
    workflow = django_filters.UUIDFilter(label="Workflow id")
    created_after = django_filters.DateTimeFilter(label="Created from", widget=DateTimeLocalInput())
    created_before = django_filters.DateTimeFilter(label="Created until", widget=DateTimeLocalInput())
    finished_after = django_filters.DateTimeFilter(label="Finished from", widget=DateTimeLocalInput())
    finished_before = django_filters.DateTimeFilter(label="Finished until", widget=DateTimeLocalInput())

    class Meta:
        model = Job
        fields: list[str] = []

    def selection(self) -> JobSelection:
        """What the (valid) form selects."""
        return JobSelection(
            **{
                SELECTION_NAMES.get(name, name): value.strip() if isinstance(value, str) else value
                for name, value in self.form.cleaned_data.items()
                if value not in (None, "")
            }
        )

    def filter_queryset(self, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return self.selection().apply(queryset)
