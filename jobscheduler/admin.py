"""Django admin for the monitoring record and the schedules: read-only, tenant-scoped, with runner actions.

Nothing here edits a job by hand: the record is written only by the backends (`tracking.py`). Cancel and
retry go through the same code as the dashboard (`dashboard.actions`), so they reach the backend that owns the
job. A non-superuser sees only the rows of their own tenant (`JOBSCHEDULER["TENANT_RESOLVER"]`; on a
single-tenant site, the default tenant).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html

from .audit import Actor
from .dashboard import actions, queries
from .dashboard.formatting import format_duration, full_job_id
from .dashboard.redaction import BOOKKEEPING_KEYS, pretty_json
from .ids import parse_uuid
from .models import AuditEntry, AuditSource, Job, JobDetail, Schedule
from .registry import JobHandlerRegistry
from .tenancy import resolve_tenant


class EstimatedCountPaginator(Paginator):
    """Uses the planner's row estimate instead of COUNT(*) when the table is large and unfiltered.

    The admin shows a page count; counting a multi-million-row `jobs` table on every page view would cost more
    than the page itself. Small or filtered querysets are counted exactly.
    """

    EXACT_BELOW = 100_000

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if not query.where and not query.distinct:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [self.object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] >= self.EXACT_BELOW:
                return int(row[0])
        return super().count


class JobTypeFilter(admin.SimpleListFilter):
    """Job types from the handler registry (Django's default would run SELECT DISTINCT over every job)."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in JobHandlerRegistry.names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(type=self.value()) if self.value() else queryset


class TenantScopedAdmin(admin.ModelAdmin):
    """Read-only; rows of the viewer's tenant only, unless the viewer is a superuser."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        tenant = resolve_tenant(request)
        return queryset.filter(tenant=tenant) if tenant else queryset.none()

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def admin_actor(request: HttpRequest) -> Actor:
    return Actor.from_request(request, AuditSource.ADMIN)


def redacted_result(detail: JobDetail) -> str:
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', pretty_json(detail.result))


redacted_result.short_description = "Result (secrets redacted)"


class JobDetailInline(admin.TabularInline):
    model = JobDetail
    fields = ("processed_at", "step_name", "status", "retry_count", redacted_result)
    readonly_fields = fields
    ordering = ("processed_at",)
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(TenantScopedAdmin):
    list_display = (
        "type",
        "status",
        "runner_type",
        "created_at",
        "attempts",
        "duration",
        "external_id",
        "job_id_display",
    )
    list_filter = ("status", "runner_type", JobTypeFilter)
    search_fields = ("=external_id", "type")
    readonly_fields = (
        "job_id",
        "tenant",
        "type",
        "status",
        "runner_type",
        "external_id",
        "external_run_id",
        "user_id",
        "created_at",
        "updated_at",
        "metadata_redacted",
    )
    exclude = ("metadata",)
    inlines = (JobDetailInline,)
    actions = ("cancel_selected", "retry_selected")
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "jobscheduler_job_changelist":
            # The list needs no payload: the same slim selection as the dashboard's history table.
            return (
                queryset.only(*queries.LIST_COLUMNS)
                .annotate(**queries.history_annotations())
                .annotate(duration=queries.DURATION)
            )
        return queryset

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        """Also find a job by its exact id."""
        results, distinct = super().get_search_results(request, queryset, search_term)
        job_id = parse_uuid(search_term.strip()) if search_term else None
        if job_id is not None:
            results = results | queryset.filter(job_id=job_id)
        return results, distinct

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobscheduler.cancel_job")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobscheduler.retry_job")

    @admin.display(description="Metadata (payload in data; secrets redacted)")
    def metadata_redacted(self, job: Job) -> str:
        return format_html(
            '<pre style="white-space: pre-wrap">{}</pre>', pretty_json(job.meta, keep=BOOKKEEPING_KEYS)
        )

    @admin.display(description="Job id", ordering="job_id")
    def job_id_display(self, job: Job) -> str:
        return full_job_id(job.job_id)

    @admin.display(description="Attempts", ordering="attempts")
    def attempts(self, job: Job):
        return getattr(job, "attempts", None)

    @admin.display(description="Duration", ordering="duration")
    def duration(self, job: Job) -> str:
        return format_duration(getattr(job, "duration", None))

    @admin.action(description="Cancel selected jobs (through their runner)", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        outcome = actions.cancel_many(
            Job.objects.filter(pk__in=queryset.values("pk")), actor=admin_actor(request)
        )
        self.message_user(
            request, f"Cancelled {outcome.done} job(s); {outcome.skipped} already finished.", messages.SUCCESS
        )
        if outcome.unreachable:
            self.message_user(request, outcome.unreachable_message(), messages.ERROR)

    @admin.action(description="Retry selected finished jobs as new jobs", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        outcome = actions.retry_many(
            Job.objects.filter(pk__in=queryset.values("pk")), actor=admin_actor(request)
        )
        self.message_user(
            request, f"Retried {outcome.done} job(s); {outcome.skipped} not finished.", messages.SUCCESS
        )


@admin.register(JobDetail)
class JobDetailAdmin(TenantScopedAdmin):
    list_display = ("step_name", "status", "job_id_display", "retry_count", "processed_at")
    list_filter = ("status",)
    search_fields = ("step_name", "=job__job_id")
    readonly_fields = (
        "detail_id",
        "tenant",
        "job",
        "step_name",
        "status",
        "result",
        "processed_at",
        "retry_count",
    )
    list_select_related = False
    paginator = EstimatedCountPaginator
    show_full_result_count = False

    @admin.display(description="Job id", ordering="job_id")
    def job_id_display(self, detail: JobDetail) -> str:
        return full_job_id(detail.job_id)


@admin.register(Schedule)
class ScheduleAdmin(TenantScopedAdmin):
    list_display = (
        "key",
        "job_name",
        "spec_text",
        "timezone",
        "runner_type",
        "paused",
        "next_run_at",
        "last_run_at",
    )
    list_filter = ("paused", "runner_type", "job_name")
    search_fields = ("key", "job_name")
    readonly_fields = (
        "id",
        "tenant",
        "key",
        "job_name",
        "data_redacted",
        "cron",
        "interval_seconds",
        "timezone",
        "user_id",
        "runner_type",
        "external_id",
        "paused",
        "next_run_at",
        "last_run_at",
        "last_job_id",
        "created_at",
        "updated_at",
    )
    actions = ("pause_selected", "resume_selected", "run_selected_now")
    exclude = ("data",)

    @admin.display(description="Data (secrets redacted)")
    def data_redacted(self, schedule: Schedule) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', pretty_json(schedule.data))

    def has_schedule_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobscheduler.change_schedule")

    @admin.display(description="Schedule")
    def spec_text(self, schedule: Schedule) -> str:
        return schedule.spec_text

    @admin.action(description="Pause selected schedules", permissions=["schedule"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = sum(actions.set_paused(s, True, actor=admin_actor(request)) for s in queryset)
        self.message_user(request, f"Paused {done} schedule(s).", messages.SUCCESS)

    @admin.action(description="Resume selected schedules", permissions=["schedule"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = sum(actions.set_paused(s, False, actor=admin_actor(request)) for s in queryset)
        self.message_user(request, f"Resumed {done} schedule(s).", messages.SUCCESS)

    @admin.action(description="Run selected schedules now", permissions=["schedule"])
    def run_selected_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        started = [
            job_id for job_id in (actions.run_now(s, actor=admin_actor(request)) for s in queryset) if job_id
        ]
        self.message_user(request, f"Started {len(started)} job(s).", messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(TenantScopedAdmin):
    """The operator audit log, read-only like the record (entries are never edited)."""

    list_display = ("at", "actor", "source", "action", "target", "count")
    list_filter = ("source", "action")
    search_fields = ("actor", "target")
    ordering = ("-at",)
