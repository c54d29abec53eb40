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
