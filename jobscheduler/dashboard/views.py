"""The `/msp/jobs/` pages and their POST actions.

Every view resolves the viewer's tenant once (`scope.dashboard_tenant`) and reads nothing outside it: a job,
schedule or selection of another tenant is simply not found (404), so its existence never leaks. Anonymous
viewers are sent to the login page; a signed-in viewer without the permission gets 403.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView
from django_tables2 import LazyPaginator, RequestConfig

from .. import audit
from ..audit import Actor
from ..conf import setting
from ..exceptions import JobSchedulerError, RunnerUnavailable, StepNotRetryable
from ..ids import parse_uuid
from ..models import AuditSource, Job, JobStatus, Schedule, Worker
from ..queues import DEFAULT_QUEUE, configured_queues
from ..record_keys import RECORD_BEHIND
from ..registry import JobHandlerRegistry
from ..runners.factory import JobRunnerFactory
from ..runners.health import health_report
from ..states import RunnerType
from ..workflows import workflow_status_from_rows
from . import actions, metrics, queries, queue_stats
from .charts import bar_chart
from .filters import JobFilter
from .formatting import error_line, format_duration, meta_time
from .graph import layout
from .redaction import BOOKKEEPING_KEYS, pretty_json
from .runner_state import runner_state
from .scope import (
    CANCEL_PERMISSION,
    QUEUE_PERMISSION,
    RETRY_PERMISSION,
    SCHEDULE_PERMISSION,
    VIEW_PERMISSION,
    dashboard_tenant,
    known_tenants,
    tenant_labels,
)
from .tables import JobTable

PER_PAGE_CHOICES = (25, 50, 100)
AUDIT_PER_PAGE = 50
#: The job page shows this job's latest operator actions (the audit page has them all).
AUDIT_ON_JOB_PAGE = 20


class TenantScopedMixin:
    """Resolves the tenant every query of the request is scoped to.

    It comes after the login and permission mixins in DashboardMixin's bases, so their checks run first: the
    site's TENANT_RESOLVER is only ever called for a signed-in viewer with the view permission (a resolver may
    assume `request.user` is a real user, and an anonymous request costs no tenant lookup).
    """

    tenant: uuid.UUID | None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.tenant = dashboard_tenant(request)
        return super().dispatch(request, *args, **kwargs)


class DashboardMixin(LoginRequiredMixin, PermissionRequiredMixin, TenantScopedMixin):
    """Login, the permission, then the tenant (in this order: see TenantScopedMixin)."""

    permission_required = VIEW_PERMISSION
    section = ""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            section=self.section,
            tenant=self.tenant,
            tenant_label=tenant_labels([self.tenant]).get(self.tenant, "") if self.tenant else "",
            live_refresh_ms=int(setting("DASHBOARD_REFRESH_SECONDS") * 1000),
            live_refresh_seconds=setting("DASHBOARD_REFRESH_SECONDS"),
        )
        if self.request.user.is_superuser:
            tenants = known_tenants()
            if self.tenant and self.tenant not in tenants:
                tenants.insert(0, self.tenant)
            labels = tenant_labels(tenants)
            context["tenant_choices"] = [(t, labels.get(t, str(t))) for t in tenants]
        return context


class OverviewView(DashboardMixin, TemplateView):
    template_name = "jobscheduler/overview.html"
    section = "overview"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        chart_range = self.request.GET.get("range")
        chart_range = chart_range if chart_range in metrics.CHART_RANGES else "hour"
        context["runner"] = runner_state()
        if self.tenant is None:
            return context
        data = metrics.overview(self.tenant)
        list_url = reverse("jobscheduler:job-list")
        context.update(
            overview=data,
            status_cards=[
                (status, count, f"{list_url}?status={status}") for status, count in data.counts.items()
            ],
            chart=bar_chart(data.chart(chart_range)),
            chart_range=chart_range,
            recent_failures=list(queries.history(self.tenant).filter(status=JobStatus.FAILED)[:5]),
        )
        return context


class JobListView(DashboardMixin, TemplateView):
    template_name = "jobscheduler/job_list.html"
    section = "history"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        job_filter = JobFilter(self.request.GET or None, queryset=queries.history(self.tenant))
        table = JobTable(job_filter.qs)
        per_page = _int_choice(self.request.GET.get("per_page"), PER_PAGE_CHOICES)
        RequestConfig(
            self.request, paginate={"paginator_class": LazyPaginator, "per_page": per_page}
        ).configure(table)
        rows = [bound.record for bound in table.page.object_list] if table.page else []
        context.update(
            filter=job_filter,
            table=table,
            per_page=per_page,
            per_page_choices=PER_PAGE_CHOICES,
            has_live_rows=any(not row.is_finished for row in rows),
            can_cancel=self.request.user.has_perm(CANCEL_PERMISSION),
            can_retry=self.request.user.has_perm(RETRY_PERMISSION),
            job_types=JobHandlerRegistry.names(),
            # Suggestions for the free-text queue filter, from code and settings: no query on a page whose
            # query count must not grow (a queue named only by a queue= option is still searchable).
            queue_names=sorted({DEFAULT_QUEUE, *JobHandlerRegistry.queue_names(), *configured_queues()}),
        )
        return context


class JobDetailView(DashboardMixin, TemplateView):
    template_name = "jobscheduler/job_detail.html"
    section = "history"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        job = queries.job_for_tenant(self.tenant, kwargs["job_id"])
        if job is None:
            raise Http404("No such job")
        meta = job.meta
        started, finished = meta_time(meta, "startedAt"), meta_time(meta, "completedAt")
        steps = list(queries.steps(job))
        for step in steps:
            step.result_json = "" if step.result is None else pretty_json(step.result)
            step.worker, step.duration = _step_worker_and_duration(step.metadata)
            if step.step_name == "execution_failed" and isinstance(step.result, dict):
                step.error_line = error_line(step.result.get("error"), step.result.get("errorType"))
        own_metadata = {k: v for k, v in meta.items() if k != "data"}
        schedule_id = meta.get("scheduleId")
        context.update(
            job=job,
            started_at=started,
            finished_at=finished if job.is_finished else None,
            duration=format_duration(finished - started) if started and finished and job.is_finished else "—",
            queue=meta.get("queue") or DEFAULT_QUEUE,
            attempts=meta.get("attempts", 0),
            max_attempts=meta.get("maxAttempts"),
            progress=meta.get("progress"),
            progress_message=meta.get("progressMessage"),
            last_error=error_line(meta.get("error"), meta.get("errorType")),
            steps=steps,
            failed_attempts=[s for s in steps if s.step_name == "execution_failed"],
            payload_json=pretty_json(meta.get("data")),
            metadata_json=pretty_json(own_metadata, keep=BOOKKEEPING_KEYS),
            schedule=_schedule_of(self.tenant, schedule_id),
            retry_of=meta.get("retryOf"),
            workflow_id=meta.get("workflowId"),
            depends_on=meta.get("dependsOn") or [],
            can_cancel=self.request.user.has_perm(CANCEL_PERMISSION) and not job.is_finished,
            can_retry=self.request.user.has_perm(RETRY_PERMISSION) and job.is_finished,
            is_live=not job.is_finished,
            audit_entries=list(audit.for_job(self.tenant, job.job_id)[:AUDIT_ON_JOB_PAGE]),
            record_behind=_record_behind(job),
        )
        return context


def _record_behind(job: Job) -> bool:
    """A live Temporal job whose record is behind its workflow (the database did not take its latest end yet),
    asked of this site's Temporal runner; a site on another runner, or a Temporal that does not answer, says
    nothing (the record is then the best answer)."""
    if job.is_finished or job.runner_type != RunnerType.TEMPORAL:
        return False
    runner = JobRunnerFactory.get_instance()
    if runner.runner_type != RunnerType.TEMPORAL:
        return False
    try:
        status = runner.get_job_status(job.job_id, job.tenant)
    except RunnerUnavailable:
        return False
    return bool(status and status.metadata.get(RECORD_BEHIND))


class WorkflowDetailView(DashboardMixin, TemplateView):
    """A workflow's graph (plain SVG, each step coloured by its status and linked to its job page) and steps."""

    template_name = "jobscheduler/workflow_detail.html"
    section = "history"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        found = queries.workflow_for_tenant(self.tenant, kwargs["workflow_id"])
        if found is None:
            raise Http404("No such workflow")
        row, jobs = found
        status = workflow_status_from_rows(str(row.id), row.name, jobs)
        context.update(
            workflow=row,
            status=status,
            graph=layout(status.steps),
            steps=status.steps,
            is_live=status.status == JobStatus.PROCESSING,
        )
        return context


class SchedulesView(DashboardMixin, TemplateView):
    template_name = "jobscheduler/schedules.html"
    section = "schedules"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        schedules = list(Schedule.objects.filter(tenant=self.tenant)) if self.tenant else []
        last_ids = [s.last_job_id for s in schedules if s.last_job_id]
        last_jobs = (
            {
                j.job_id: j
                for j in Job.objects.for_tenant(self.tenant)
                .filter(job_id__in=last_ids)
                .only("job_id", "status")
            }
            if last_ids
            else {}
        )
        context.update(
            rows=[(s, last_jobs.get(s.last_job_id)) for s in schedules],
            can_change=self.request.user.has_perm(SCHEDULE_PERMISSION),
        )
        return context


class AuditView(DashboardMixin, TemplateView):
    """The tenant's operator actions, newest first."""

    template_name = "jobscheduler/audit.html"
    section = "audit"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        paginator = Paginator(audit.for_tenant(self.tenant), AUDIT_PER_PAGE)
        context["page"] = paginator.get_page(self.request.GET.get("page"))
        return context


class WorkersView(DashboardMixin, TemplateView):
    """Workers are shared by all tenants; a viewer sees each worker's load but only links to its own jobs."""

    template_name = "jobscheduler/workers.html"
    section = "workers"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        workers = list(Worker.objects.all())
        running = {w.id: _running_ids(w.running_jobs) for w in workers}
        all_ids = [i for ids in running.values() for i in ids]
        visible = (
            {
                j.job_id: j
                for j in Job.objects.for_tenant(self.tenant).filter(job_id__in=all_ids).only("job_id", "type")
            }
            if self.tenant and all_ids
            else {}
        )
        expiry = setting("WORKER_EXPIRY_SECONDS")
        now = timezone.now()
        context["rows"] = [
            {
                "worker": w,
                "heartbeat_age": max(0, round((now - w.heartbeat_at).total_seconds())),
                "stale": (now - w.heartbeat_at).total_seconds() > expiry,
                "running_total": len(running[w.id]),
                "own_jobs": [visible[i] for i in running[w.id] if i in visible],
            }
            for w in workers
        ]
        return context


class QueuesView(DashboardMixin, TemplateView):
    """Every queue: its live settings (shared by all tenants) and the viewer's tenant's figures."""

    template_name = "jobscheduler/queues.html"
    section = "queues"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        runner = JobRunnerFactory.get_instance()
        page = queue_stats.queues_page(self.tenant) if self.tenant else None
        rows = queue_stats.rows(runner.list_queues(), page) if page else []
        context.update(
            rows=rows,
            computed_at=page.computed_at if page else None,
            window_minutes=int(queue_stats.WINDOW.total_seconds() // 60),
            can_change=self.request.user.has_perm(QUEUE_PERMISSION),
            temporal_in_use=runner.runner_type == RunnerType.TEMPORAL
            or any(r.figures.on_temporal for r in rows),
        )
        return context


class HealthView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """`health_report()` as JSON: 200 when healthy, 503 when not. Site-wide, not tenant-scoped (like the
    workers page): it names job names and task queues, never a tenant's jobs."""

    permission_required = VIEW_PERMISSION

    def get(self, request: HttpRequest) -> JsonResponse:
        report = health_report()
        return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)


class ActionView(DashboardMixin, View):
    """A POST-only action (CSRF-checked by the middleware) that redirects back where it was asked from."""

    http_method_names = ["post"]

    def redirect_back(self, fallback: str) -> HttpResponseRedirect:
        target = self.request.POST.get("next") or ""
        if not url_has_allowed_host_and_scheme(
            target, allowed_hosts={self.request.get_host()}, require_https=self.request.is_secure()
        ):
            target = fallback
        return HttpResponseRedirect(target)

    @property
    def actor(self) -> Actor:
        return Actor.from_request(self.request, AuditSource.DASHBOARD)

    def get_job(self, job_id: uuid.UUID) -> Job:
        job = queries.job_for_tenant(self.tenant, job_id)
        if job is None:
            raise Http404("No such job")
        return job


class CancelJobView(ActionView):
    permission_required = (VIEW_PERMISSION, CANCEL_PERMISSION)

    def post(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        job = self.get_job(job_id)
        if job.is_finished:
            messages.warning(request, f"Job {job.job_id} had already finished ({job.status}).")
            return self.redirect_back(reverse("jobscheduler:job-detail", args=[job.job_id]))
        try:
            cancelled = actions.cancel(job, actor=self.actor)
        except RunnerUnavailable as exc:
            messages.error(request, f"Job {job.job_id} could not be cancelled: {exc}")
        else:
            if cancelled:
                messages.success(request, f"Cancelled job {job.job_id}.")
            else:
                messages.error(request, f"Job {job.job_id} could not be cancelled.")
        return self.redirect_back(reverse("jobscheduler:job-detail", args=[job.job_id]))


class RetryJobView(ActionView):
    permission_required = (VIEW_PERMISSION, RETRY_PERMISSION)

    def post(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
        job = self.get_job(job_id)
        try:
            new_id = actions.retry(job, actor=self.actor)
        except StepNotRetryable as exc:
            messages.error(request, str(exc))
            return self.redirect_back(reverse("jobscheduler:job-detail", args=[job.job_id]))
        if new_id is None:
            messages.warning(
                request, f"Job {job.job_id} is still running; only finished jobs can be retried."
            )
            return self.redirect_back(reverse("jobscheduler:job-detail", args=[job.job_id]))
        messages.success(request, f"Retried job {job.job_id} as a new job.")
        return HttpResponseRedirect(reverse("jobscheduler:job-detail", args=[new_id]))


class BulkActionView(ActionView):
    """Cancel or retry the selected jobs of the tenant; ids of other tenants are ignored, never acted on."""

    def get_permission_required(self) -> tuple[str, ...]:
        action = self.request.POST.get("action")
        if action == "cancel":
            return (VIEW_PERMISSION, CANCEL_PERMISSION)
        if action == "retry":
            return (VIEW_PERMISSION, RETRY_PERMISSION)
        return (VIEW_PERMISSION,)

    def post(self, request: HttpRequest) -> HttpResponse:
        fallback = reverse("jobscheduler:job-list")
        action = request.POST.get("action")
        if action not in ("cancel", "retry"):
            messages.error(request, "Choose cancel or retry.")
            return self.redirect_back(fallback)
        jobs = actions.jobs_by_ids(self.tenant, request.POST.getlist("job_ids")) if self.tenant else []
        if not jobs:
            messages.warning(request, "No jobs selected.")
            return self.redirect_back(fallback)
        if action == "cancel":
            outcome = actions.cancel_many(jobs, actor=self.actor)
            messages.success(request, f"Cancelled {outcome.done} job(s); {outcome.skipped} already finished.")
            if outcome.unreachable:
                messages.error(request, outcome.unreachable_message())
        else:
            outcome = actions.retry_many(jobs, actor=self.actor)
            messages.success(request, f"Retried {outcome.done} job(s); {outcome.skipped} not finished.")
        return self.redirect_back(fallback)


class RedriveView(ActionView):
    """Retry or cancel every job of the tenant matching the history's filter (not only this page's), on the
    server in batches; recorded in the audit log under the viewer's name."""

    def get_permission_required(self) -> tuple[str, ...]:
        action = self.request.POST.get("action")
        if action == "cancel":
            return (VIEW_PERMISSION, CANCEL_PERMISSION)
        if action == "retry":
            return (VIEW_PERMISSION, RETRY_PERMISSION)
        return (VIEW_PERMISSION,)

    def post(self, request: HttpRequest) -> HttpResponse:
        fallback = reverse("jobscheduler:job-list")
        action = request.POST.get("action")
        job_filter = JobFilter(request.POST, queryset=Job.objects.none())
        if action not in ("cancel", "retry") or self.tenant is None:
            messages.error(request, "Choose cancel or retry.")
            return self.redirect_back(fallback)
        if not job_filter.is_valid():
            messages.error(request, "The filter is not valid; nothing was changed.")
            return self.redirect_back(fallback)
        runner = JobRunnerFactory.get_instance()
        bulk = runner.retry_jobs if action == "retry" else runner.cancel_jobs
        outcome = bulk(
            job_filter.selection(), self.tenant, actor=Actor.from_request(request, AuditSource.DASHBOARD)
        )
        verb = "Retried" if action == "retry" else "Cancelled"
        messages.success(
            request, f"{verb} {outcome.done} job(s) matching the filter; {outcome.skipped} skipped."
        )
        return self.redirect_back(fallback)


class QueueActionView(ActionView):
    """Pause, resume, change the limits of, or reset a queue (on every worker; audited under the viewer's name)."""

    permission_required = (VIEW_PERMISSION, QUEUE_PERMISSION)

    def post(self, request: HttpRequest, name: str, action: str) -> HttpResponse:
        runner = JobRunnerFactory.get_instance()
        actor = Actor.from_request(request, AuditSource.DASHBOARD)
        try:
            if action == "pause":
                runner.pause_queue(name, actor=actor)
                messages.success(request, f"Queue {name} paused: no job of it starts on any worker.")
            elif action == "resume":
                runner.resume_queue(name, actor=actor)
                messages.success(request, f"Queue {name} resumed.")
            elif action == "reset":
                runner.reset_queue(name, actor=actor)
                messages.success(request, f"Queue {name} is back to its settings.")
            elif action == "limits":
                state = runner.set_queue_limits(name, actor=actor, **_limits_from(request.POST))
                messages.success(request, f"Queue {name}: {describe_limits(state)}.")
            else:
                raise Http404("No such action")
        except JobSchedulerError as exc:
            messages.error(request, f"Queue {name} was not changed: {exc}")
        return self.redirect_back(reverse("jobscheduler:queues"))


def _limits_from(form: Any) -> dict[str, Any]:
    """The limits form: an empty field removes that limit; numbers that are not numbers are refused by the
    runner with its own message (they are passed on as given)."""
    limits: dict[str, Any] = {}
    for field in ("concurrency", "tenant_concurrency"):
        text = (form.get(field) or "").strip()
        limits[field] = None if not text else int(text) if text.isdigit() else text
    limits["rate_limit"] = (form.get("rate_limit") or "").strip() or None
    return limits


def describe_limits(state: Any) -> str:
    parts = [
        f"{label} {value}"
        for label, value in (
            ("concurrency", state.concurrency),
            ("per tenant", state.tenant_concurrency),
            ("rate", state.rate_limit),
        )
        if value is not None
    ]
    return ", ".join(parts) or "no limits"


class ScheduleActionView(ActionView):
    permission_required = (VIEW_PERMISSION, SCHEDULE_PERMISSION)

    def post(self, request: HttpRequest, schedule_id: uuid.UUID, action: str) -> HttpResponse:
        if self.tenant is None:
            raise Http404("No such schedule")
        schedule = get_object_or_404(Schedule, tenant=self.tenant, id=schedule_id)
        if action not in ("pause", "resume", "run"):
            raise Http404("No such action")
        try:
            self.act(schedule, action)
        except RunnerUnavailable as exc:
            messages.error(request, f"Schedule {schedule.key}: nothing was done: {exc}")
        return self.redirect_back(reverse("jobscheduler:schedules"))

    def act(self, schedule: Schedule, action: str) -> None:
        request = self.request
        if action in ("pause", "resume"):
            actions.set_paused(schedule, action == "pause", actor=self.actor)
            messages.success(
                request, f"Schedule {schedule.key} {'paused' if action == 'pause' else 'resumed'}."
            )
        elif action == "run":
            new_id = actions.run_now(schedule, actor=self.actor)
            if new_id is None:
                messages.error(request, f"Schedule {schedule.key} could not be run.")
            else:
                messages.success(request, f"Schedule {schedule.key} started job {new_id}.")


def _schedule_of(tenant: uuid.UUID | None, schedule_id: Any) -> Schedule | None:
    sid = parse_uuid(schedule_id) if schedule_id else None
    if sid is None or tenant is None:
        return None
    return Schedule.objects.filter(tenant=tenant, id=sid).first()


def _step_worker_and_duration(metadata: Any) -> tuple[str, str]:
    """The worker and the time since its attempt started, from a step's metadata ("" when not recorded: steps
    written before the column existed, or a step outside an attempt)."""
    meta = metadata if isinstance(metadata, dict) else {}
    worker = meta.get("workerId")
    ms = meta.get("durationMs")
    duration = format_duration(timedelta(milliseconds=ms)) if isinstance(ms, int | float) and ms >= 0 else ""
    return (str(worker) if worker else ""), duration


def _running_ids(value: Any) -> list[uuid.UUID]:
    """Job ids from a worker's `running_jobs` list (plain ids, or objects carrying `job_id` / `jobId`)."""
    ids = []
    for item in value if isinstance(value, list) else []:
        raw = item.get("job_id") or item.get("jobId") if isinstance(item, dict) else item
        parsed = parse_uuid(raw)
        if parsed is not None:
            ids.append(parsed)
    return ids


def _int_choice(value: str | None, choices: tuple[int, ...]) -> int:
    try:
        number = int(value or choices[0])
    except ValueError:
        return choices[0]
    return number if number in choices else choices[0]
