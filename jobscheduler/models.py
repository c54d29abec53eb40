"""The monitoring record (`jobs`, `job_details`) and the engine's own tables.

`jobs` and `job_details` are the seed's tables (docs/data-model.md names the two deliberate type changes:
`timestamptz` for TIMESTAMP, `varchar(255)` for VARCHAR). The database's primary keys are the
composite `(tenant, job_id)` / `(tenant, detail_id)` (made by the migration); Django sees `job_id` /
`detail_id` as the primary key because its admin refuses composite keys, and those ids are unique anyway.

Per-job timing, attempts, progress and the payload live in `jobs.metadata` (see `tracking.py` for the keys),
so the seed's columns stay as declared.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid

from django.db import models
from django.db.models.fields.json import KT
from django.db.models.functions import Now


class JobStatus(models.TextChoices):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    ACTIVE = "active"
    QUEUED = "queued"
    CANCELLED = "cancelled"  # addition: the seed had no way to record a cancelled job


FINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
LIVE_STATUSES = (JobStatus.PENDING, JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.ACTIVE)


class JobStatusField(models.CharField):
    """The `job_status` PostgreSQL enum (Django has no enum field; the column type is set here)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 20)
        kwargs.setdefault("choices", JobStatus.choices)
        super().__init__(*args, **kwargs)

    def db_type(self, connection):
        return "job_status"

    def get_placeholder(self, value, compiler, connection):
        return "%s::job_status"


class RecordJSONField(models.JSONField):
    """JSONB that always loads: a row written by hand can nest deeper than Python's JSON decoder allows, and the
    dashboard and admin must still show the job (the worker fails such a job with InvalidJobData)."""

    DEEPEST = 20_000

    def from_db_value(self, value, expression, connection):
        try:
            return super().from_db_value(value, expression, connection)
        except RecursionError:
            return _decode_deep(value, self.DEEPEST)


_deep_lock = threading.Lock()


def _decode_deep(text: str, deepest: int):
    with _deep_lock:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, deepest + 100))
        try:
            return json.loads(text)
        except RecursionError:
            return {"undecodable": f"this JSON is nested more than {deepest} levels deep"}
        finally:
            sys.setrecursionlimit(limit)


class JobQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        return self.filter(tenant=tenant)

    def pending(self):
        return self.filter(status__in=[JobStatus.PENDING, JobStatus.QUEUED])

    def running(self):
        return self.filter(status__in=[JobStatus.PROCESSING, JobStatus.ACTIVE])

    def finished(self):
        return self.filter(status__in=FINAL_STATUSES)

    def failed(self):
        return self.filter(status=JobStatus.FAILED)

    def in_workflow(self, workflow_id):
        """The steps of a workflow, in the form the partial index `jobs_workflow_idx` serves (->> and ?)."""
        return (
            self.filter(metadata__has_key="workflowId")
            .alias(workflow_key=KT("metadata__workflowId"))
            .filter(workflow_key=str(workflow_id))
        )


class Job(models.Model):
    tenant = models.UUIDField()
    job_id = models.UUIDField(
        primary_key=True, default=uuid.uuid4, db_default=models.Func(function="gen_random_uuid")
    )
    type = models.CharField(max_length=255)
    metadata = RecordJSONField(null=True, blank=True)
    status = JobStatusField()
    created_at = models.DateTimeField(null=True, db_default=Now())
    updated_at = models.DateTimeField(null=True, blank=True)
    user_id = models.UUIDField()
    runner_type = models.CharField(max_length=50, default="pgboss", db_default="pgboss")
    external_id = models.CharField(max_length=255, null=True, blank=True)
    external_run_id = models.CharField(max_length=255, null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        db_table = "jobs"
        managed = True
        ordering = ("-created_at",)
        permissions = [("cancel_job", "Can cancel jobs"), ("retry_job", "Can retry jobs")]

    def __str__(self) -> str:
        return f"{self.type} {self.job_id} ({self.status})"

    @property
    def meta(self) -> dict:
        return self.metadata if isinstance(self.metadata, dict) else {}

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_STATUSES


class JobDetail(models.Model):
    tenant = models.UUIDField()
    detail_id = models.UUIDField(
        primary_key=True, default=uuid.uuid4, db_default=models.Func(function="gen_random_uuid")
    )
    # A plain column for Django; the database holds the composite FK (tenant, job_id) -> jobs.
    job = models.ForeignKey(Job, on_delete=models.DO_NOTHING, db_constraint=False, related_name="details")
    step_name = models.CharField(max_length=255)
    status = JobStatusField()
    result = RecordJSONField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    retry_count = models.IntegerField(null=True, default=0, db_default=0)
    #: How the step came about, beside what it produced (`result`): the attempt, the worker and the time from
    #: the attempt's start (`attempt`, `workerId`, `durationMs`), written by `tracking.py`.
    metadata = RecordJSONField(null=True, blank=True)

    class Meta:
        db_table = "job_details"
        ordering = ("processed_at",)

    def __str__(self) -> str:
        return f"{self.step_name} ({self.status})"


class Schedule(models.Model):
    """A recurring job (addition: the seed kept schedules inside pg-boss)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = models.UUIDField()
    key = models.CharField(max_length=255)
    job_name = models.CharField(max_length=255)
    data = models.JSONField(default=dict)
    #: The caller's metadata, copied into every run's `jobs.metadata`.
    metadata = models.JSONField(default=dict, blank=True)
    cron = models.CharField(max_length=255, blank=True, default="")
    interval_seconds = models.FloatField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    user_id = models.UUIDField()
    runner_type = models.CharField(max_length=50, default="pgboss")
    external_id = models.CharField(max_length=255, null=True, blank=True)
    paused = models.BooleanField(default=False)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_job_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "jobscheduler_schedules"
        ordering = ("key",)
        indexes = [models.Index(fields=["next_run_at"], name="jobsched_sched_next_idx")]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="jobsched_schedule_key_uniq")]

    def __str__(self) -> str:
        return self.key

    @property
    def spec_text(self) -> str:
        return self.cron or f"every {self.interval_seconds:g}s"


class ScheduleRun(models.Model):
    """One firing of a schedule; the unique (schedule, tick) makes each tick fire once."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    tick = models.DateTimeField()
    job_id = models.UUIDField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "jobscheduler_schedule_runs"
        constraints = [
            models.UniqueConstraint(fields=["schedule", "tick"], name="jobsched_schedule_tick_uniq")
        ]
        indexes = [models.Index(fields=["job_id"], name="jobsched_run_job_idx")]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.tick.isoformat()}"


class Worker(models.Model):
    """A live worker process, registered and heartbeated by the worker itself."""

    id = models.CharField(primary_key=True, max_length=128)
    backend = models.CharField(max_length=50, default="pgboss")
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    concurrency = models.IntegerField()
    job_names = models.JSONField(default=list)
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    running_jobs = models.JSONField(default=list)

    class Meta:
        db_table = "jobscheduler_workers"
        ordering = ("-started_at",)

    def __str__(self) -> str:
        return self.id


class QueueJob(models.Model):
    """A job waiting in, or leased from, the pgboss queue (addition: the engine's own table).

    A row exists only while the job is live: it is deleted when the job reaches a final state, so the claim
    index only ever holds work still to do. `lease_token` is NULL while queued and set while an attempt holds
    the job; every finalisation must present the token and attempt it claimed with (fencing).
    """

    job_id = models.UUIDField(primary_key=True)
    tenant = models.UUIDField()
    name = models.CharField(max_length=255)
    priority = models.IntegerField(default=0)
    run_at = models.DateTimeField()
    attempt = models.IntegerField(default=0)
    max_attempts = models.IntegerField(default=3)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker_id = models.CharField(max_length=128, null=True, blank=True)
    singleton_key = models.CharField(max_length=255, null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now())
    #: Workflow steps: how many dependencies have not yet completed. A waiting row is parked at run_at
    #: the end of year 9999 (queue/sql.PARKED_UNTIL), so the claim's `run_at <= now()` never sees it; the statement that records its last
    #: dependency's completion sets run_at to now() (see queue/sql.py, SETTLE_DEPENDENTS).
    waiting_on = models.IntegerField(default=0, db_default=0)
    #: The dependency whose failure or cancellation cancelled this waiting step. The row stays (parked) so a
    #: retry of that dependency can resume the step with its count of completed dependencies intact.
    blocked_by = models.UUIDField(null=True, blank=True)

    class Meta:
        db_table = "jobscheduler_queue"
        indexes = [
            models.Index(
                models.F("priority").desc(),
                "run_at",
                name="jobsched_queue_ready_idx",
                condition=models.Q(lease_token__isnull=True),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="jobsched_queue_lease_idx",
                condition=models.Q(lease_token__isnull=False),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "singleton_key"],
                name="jobsched_queue_singleton_uniq",
                condition=models.Q(singleton_key__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.job_id}"


class AuditSource(models.TextChoices):
    """Where an operator acted from."""

    DASHBOARD = "dashboard"
    ADMIN = "admin"
    CLI = "cli"


class AuditAction(models.TextChoices):
    CANCEL = "cancel"
    RETRY = "retry"
    BULK_CANCEL = "bulk_cancel"
    BULK_RETRY = "bulk_retry"
    PAUSE_SCHEDULE = "pause_schedule"
    RESUME_SCHEDULE = "resume_schedule"
    RUN_SCHEDULE = "run_schedule"


class AuditEntry(models.Model):
    """One operator action (an addition to the seed's tables): who, when, from where, what and on how many.

    Written by `jobscheduler.audit` in the same code path as the action, for the dashboard, the admin and the
    command line alike; never changed afterwards. `tenant` scopes it like the jobs it acted on (one entry per
    tenant when a bulk action spans several); it may be None for an action on something no tenant owns.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = models.UUIDField(null=True, blank=True)
    at = models.DateTimeField(db_default=Now())
    #: The operator's user name (dashboard, admin) or login name on the machine (command line).
    actor = models.CharField(max_length=255)
    #: The Django user's primary key, when there is one.
    actor_id = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=16, choices=AuditSource.choices)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    #: What it acted on, as an operator reads it: a job id, a schedule key, "3 jobs".
    target = models.CharField(max_length=255, blank=True, default="")
    #: The job of a single-job action (bulk actions list theirs in detail["jobIds"]).
    job_id = models.UUIDField(null=True, blank=True)
    #: How many it applied to.
    count = models.IntegerField(default=0)
    #: What else an operator needs: jobIds, skipped, newJobId(s), scheduleId.
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "jobscheduler_audit"
        ordering = ("-at",)
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["tenant", "-at"], name="jobsched_audit_tenant_at_idx"),
            models.Index(fields=["tenant", "job_id"], name="jobsched_audit_job_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"


class Workflow(models.Model):
    """A graph of jobs scheduled together (addition, for workflows); its steps are `jobs` rows whose metadata
    carries `workflowId` and `dependsOn`."""

    id = models.UUIDField(primary_key=True)
    tenant = models.UUIDField()
    name = models.CharField(max_length=255)
    runner_type = models.CharField(max_length=50, default="pgboss")
    user_id = models.UUIDField()
    step_count = models.IntegerField()
    #: Temporal: the id of the orchestrating workflow.
    external_id = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "jobscheduler_workflows"
        ordering = ("-created_at",)
        indexes = [models.Index(fields=["tenant", "-created_at"], name="jobsched_workflow_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"


class WorkflowDependency(models.Model):
    """One edge of a workflow: `job_id` starts only after `depends_on` completed (addition, for workflows).

    `settled` turns true once the edge's outcome has been applied to the waiting step (a completion counted,
    or the step cancelled because of it); the statements that apply it only take unsettled edges, under the
    edge's row lock, so two statements finishing dependencies at once never apply one edge twice.
    """

    pk = models.CompositePrimaryKey("job_id", "depends_on")
    tenant = models.UUIDField()
    workflow_id = models.UUIDField()
    job_id = models.UUIDField()
    depends_on = models.UUIDField()
    run_after_failure = models.BooleanField(default=False)
    settled = models.BooleanField(default=False)

    class Meta:
        db_table = "jobscheduler_dependencies"
        indexes = [models.Index(fields=["depends_on"], name="jobsched_dep_depends_on_idx")]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.depends_on}"
