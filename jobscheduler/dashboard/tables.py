"""The job history table (django-tables2): what each column shows and how it sorts."""

from __future__ import annotations

import uuid
from datetime import timedelta

import django_tables2 as tables
from django.db.models import F, QuerySet
from django.urls import reverse
from django.utils.html import format_html

from ..models import Job
from .formatting import format_duration, short_job_id


class NullsLastMixin:
    """Sorts with empty values (jobs not started or not finished) last in both directions."""

    def order(self, queryset: QuerySet, is_descending: bool) -> tuple[QuerySet, bool]:
        field = F(self.accessor.replace(".", "__"))
        ordering = field.desc(nulls_last=True) if is_descending else field.asc(nulls_last=True)
        return queryset.order_by(ordering, "-created_at"), True


class NullsLastColumn(NullsLastMixin, tables.Column):
    pass


class NullsLastDateTimeColumn(NullsLastMixin, tables.DateTimeColumn):
    pass


class JobTable(tables.Table):
    selection = tables.CheckBoxColumn(
        accessor="job_id",
        attrs={
            "th__input": {"data-select-all": "job_ids", "aria-label": "Select all jobs on this page"},
            "td__input": {"name": "job_ids", "aria-label": "Select job"},
        },
        orderable=False,
    )
    type = tables.Column(verbose_name="Type", linkify=lambda record: job_url(record))
    status = tables.Column(verbose_name="Status")
    queue = tables.Column(verbose_name="Queue")
    runner_type = tables.Column(verbose_name="Runner")
    created_at = tables.DateTimeColumn(verbose_name="Created", format="Y-m-d H:i:s")
    started_at = NullsLastDateTimeColumn(verbose_name="Started", format="Y-m-d H:i:s")
    duration = NullsLastColumn(verbose_name="Duration")
    attempts = NullsLastColumn(verbose_name="Attempts", attrs={"td": {"class": "num"}})
    progress = tables.Column(verbose_name="Progress", orderable=False)
    job_id = tables.Column(verbose_name="Job id", orderable=False, attrs={"td": {"class": "mono"}})

    class Meta:
        model = Job
        fields = ()
        sequence = (
            "selection",
            "type",
            "status",
            "queue",
            "runner_type",
            "created_at",
            "started_at",
            "duration",
            "attempts",
            "progress",
            "job_id",
        )
        template_name = "jobscheduler/_table.html"
        attrs = {"class": "data-table"}
        order_by = ("-created_at",)
        empty_text = "No jobs match these filters."
        orderable = True

    def render_status(self, value: str) -> str:
        return format_html('<span class="badge {}">{}</span>', value, value)

    def render_duration(self, value: timedelta) -> str:
        return format_duration(value)

    def render_progress(self, value: float, record: Job) -> str:
        pct = max(0.0, min(100.0, float(value)))
        return format_html(
            '<span class="bar" title="{}%"><span style="width:{}%"></span></span>', f"{pct:g}", f"{pct:.0f}"
        )

    def render_job_id(self, value: uuid.UUID) -> str:
        """The random tail that differs from row to row (the head is the creation time), the whole id a click
        away."""
        return short_job_id(value)


def job_url(record: Job) -> str:
    return reverse("jobscheduler:job-detail", args=[record.job_id])
