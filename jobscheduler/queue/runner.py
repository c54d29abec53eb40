"""PgBossJobRunner: the PostgreSQL backend's side of the runner API, on the caller's Django connection.

Enqueueing runs on Django's connection, so inside `transaction.atomic()` a job exists if and only if the
transaction commits, and its NOTIFY (the workers' wake-up) is only delivered at commit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone as dj_timezone

from .. import tracking, uniqueness, validation
from ..conf import setting
from ..ids import new_id, parse_uuid
from ..models import Schedule
from ..outcomes import BULK_CANCEL_REASON, DEFAULT_CANCEL_REASON
from ..registry import JobHandlerRegistry
from ..runners.base import (
    HandOver,
    JobRunner,
    JobStatusInfo,
    ScheduleJobResult,
    UnservedQueue,
    load_status,
)
from ..states import RunnerType
from ..telemetry import tracing
from ..uniqueness import Debounce, Policy
from ..workflows import Workflow, WorkflowResult, plan
from . import redrive, sql, workflows
from .connection import django_prepared_cursor
from .cron import next_tick
from .enqueue import enqueue, enqueue_one

#: Ready jobs read at most when looking for unserved job names (see sql.UNSERVED).
QUEUE_SCAN_LIMIT = 10_000


class PgBossJobRunner(JobRunner):
    runner_type = RunnerType.PGBOSS

    def __init__(self) -> None:
        self.fallback_active = False
        self.fallback_reason = None

    # -- one-off jobs ------------------------------------------------------------------------------------------

    def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        queue: str | None = None,
        unique: Policy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult:
        return self._enqueue_one(
            job_name,
            data,
            None,
            tenant_id,
            user_id,
            singleton_key,
            priority,
            metadata,
            queue=queue,
            unique=unique,
        )

    def schedule_job_at(
        self,
        job_name: str,
        data: dict[str, Any],
        run_at: datetime,
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        queue: str | None = None,
        unique: Policy | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult:
        validation.check_run_at(run_at)
        return self._enqueue_one(
            job_name,
            data,
            run_at,
            tenant_id,
            user_id,
            singleton_key,
            priority,
            metadata,
            queue=queue,
            unique=unique,
        )

    def schedule_jobs(
        self,
        job_name: str,
        items: Sequence[dict[str, Any]],
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        priority: int = 0,
        run_at: datetime | None = None,
        queue: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[ScheduleJobResult]:
        """Enqueue many jobs of one name in one round trip; all are validated before any is written. One
        enqueue span covers the batch; every job carries its context."""
        queue = validation.resolve_queue(queue, JobHandlerRegistry.get(job_name).queue)
        with tracing.enqueue_span(
            queue=queue, job_type=job_name, backend=RunnerType.PGBOSS, count=len(items)
        ) as (trace, _span):
            return self._write_many(
                job_name, items, tenant_id, user_id, priority, run_at, queue, metadata, trace
            )

    def _write_many(
        self,
        job_name: str,
        items: Sequence[dict[str, Any]],
        tenant_id: Any,
        user_id: Any,
        priority: int,
        run_at: datetime | None,
        queue: str,
        metadata: dict[str, Any] | None,
        trace: dict[str, str],
    ) -> list[ScheduleJobResult]:
        spec = JobHandlerRegistry.get(job_name)
        if run_at is not None:
            validation.check_run_at(run_at)
        priority = validation.check_priority(priority)
        extra = {**validation.encode_metadata(metadata), **trace}
        user = validation.resolve_user(user_id)
        texts = validation.encode_data_many(items)
        if tenant_id is None:  # each job's own data["tenantId"], else the default tenant
            tenants = [validation.resolve_tenant(None, data) for data in items]
        else:  # the data is not consulted: one answer for the batch
            tenants = [validation.resolve_tenant(tenant_id, None)] * len(items)
        metas = tracking.build_metadata_many(
            texts,
            extra=extra,
            max_attempts=spec.retry.max_attempts,
            priority=priority,
            queue=queue,
            timeout_ms=spec.timeout_ms,
        )
        ids = [new_id() for _ in metas]
        self._insert(
            job_name, queue, tenants, ids, metas, user, priority, run_at, spec.retry.max_attempts, None
        )
        return [ScheduleJobResult(job_id=s, external_id=s) for s in map(str, ids)]

    def _enqueue_one(
        self,
        job_name: str,
        data: Any,
        run_at: datetime | None,
        tenant_id: Any,
        user_id: Any,
        singleton_key: str | None,
        priority: int,
        metadata: dict[str, Any] | None,
        *,
        schedule_id: uuid.UUID | None = None,
        queue: str | None = None,
        unique: Policy | None = None,
    ) -> ScheduleJobResult:
        queue = validation.resolve_queue(queue, JobHandlerRegistry.get(job_name).queue)
        with tracing.enqueue_span(queue=queue, job_type=job_name, backend=RunnerType.PGBOSS) as (
            trace,
            span,
        ):
            result = self._write_one(
                job_name,
                data,
                run_at,
                tenant_id,
                user_id,
                singleton_key,
                priority,
                metadata,
                schedule_id,
                trace,
                queue,
                unique,
            )
            tracing.set_job_id(span, result.job_id)
            return result

    def _write_one(
        self,
        job_name: str,
        data: Any,
        run_at: datetime | None,
        tenant_id: Any,
        user_id: Any,
        singleton_key: str | None,
        priority: int,
        metadata: dict[str, Any] | None,
        schedule_id: uuid.UUID | None,
        trace: dict[str, str],
        queue: str,
        unique: Policy | None,
    ) -> ScheduleJobResult:
        spec = JobHandlerRegistry.get(job_name)
        text = validation.encode_data(data)
        tenant = validation.resolve_tenant(tenant_id, data)
        user = validation.resolve_user(user_id)
        priority = validation.check_priority(priority)
        singleton_key = validation.check_singleton_key(singleton_key)
        policy = validation.check_unique(unique, singleton_key=singleton_key, run_at=run_at)
        meta = tracking.build_metadata(
            text,
            extra={**validation.encode_metadata(metadata), **trace},
            max_attempts=spec.retry.max_attempts,
            priority=priority,
            singleton_key=singleton_key,
            schedule_id=schedule_id,
            queue=queue,
            unique_key=policy.key if policy else None,
            timeout_ms=spec.timeout_ms,
        )
        args = (job_name, queue, tenant, new_id(), meta, user, priority, run_at, spec.retry.max_attempts)
        if policy is not None:
            job_id = self._insert_unique(policy, text, *args)
        else:
            job_id = self._insert_one(*args, singleton_key)
        return ScheduleJobResult(job_id=str(job_id), external_id=str(job_id))

    def take_over(self, handover: HandOver) -> ScheduleJobResult:
        """Run on pgboss a job another backend could not be reached to start (Temporal, with
        JOB_RUNNER_FALLBACK_TO_PGBOSS): its pending row is replaced by a pgboss one with the same id, payload and metadata, plus
        `fallbackReason`. A job cancelled while pending stays cancelled and is not enqueued."""
        job = handover.job
        meta = json.loads(job.metadata_json)
        meta["fallbackReason"] = handover.reason
        max_attempts = meta.get("maxAttempts") or JobHandlerRegistry.get(job.type).retry.max_attempts
        with transaction.atomic():
            if not tracking.record_withdrawn(job.tenant, job.job_id, runner_type=handover.from_runner):
                return ScheduleJobResult(job_id=str(job.job_id), external_id=None)
            job_id = self._insert_one(
                job.type,
                meta.get("queue") or JobHandlerRegistry.get(job.type).queue,
                job.tenant,
                job.job_id,
                json.dumps(meta, separators=(",", ":")),
                job.user_id,
                int(meta.get("priority") or 0),
                handover.run_at,
                max_attempts,
                handover.singleton_key,
            )
        return ScheduleJobResult(job_id=str(job_id), external_id=str(job_id))

    def _insert_one(
        self,
        job_name: str,
        queue: str,
        tenant: uuid.UUID,
        job_id: uuid.UUID,
        meta: str,
        user: uuid.UUID,
        priority: int,
        run_at: datetime | None,
        max_attempts: int,
        singleton_key: str | None,
    ) -> uuid.UUID:
        """Enqueue one job; with a singleton key held by a live job, that job's id instead."""
        job = {
            "job_name": job_name,
            "queue": queue,
            "tenant": tenant,
            "job_id": job_id,
            "meta": meta,
            "user": user,
            "priority": priority,
            "run_at": run_at,
            "max_attempts": max_attempts,
            "singleton_key": singleton_key,
        }
        # One statement, atomic on its own: no savepoint round trips on the hot path.
        if not enqueue_one(**job) and singleton_key is not None:
            existing = self._find_singleton(tenant, singleton_key)
            if existing is None:  # the live one finished in between: this one takes its place
                enqueue_one(**job)
            else:
                return existing
        return job_id

    def _insert_unique(
        self,
        policy: Policy,
        data_json: str,
        job_name: str,
        queue: str,
        tenant: uuid.UUID,
        job_id: uuid.UUID,
        meta: str,
        user: uuid.UUID,
        priority: int,
        run_at: datetime | None,
        max_attempts: int,
    ) -> uuid.UUID:
        """Enqueue one job under its uniqueness policy, holding the (tenant, key) lock until the transaction
        ends; the id of the job that makes it redundant (or that a Debounce moved) instead, if any."""
        with transaction.atomic():
            uniqueness.lock(tenant, policy.key)
            if isinstance(policy, Debounce):
                with connection.cursor() as cur:
                    cur.execute(
                        sql.DEBOUNCE,
                        {
                            "tenant": tenant,
                            "key": policy.key,
                            "window": policy.window,
                            "max_wait": policy.max_wait,
                            "data": data_json,
                        },
                    )
                    row = cur.fetchone()
                if row is not None:
                    return row[0]
                run_at = dj_timezone.now() + policy.window
            else:
                existing = uniqueness.find_existing(tenant, policy)
                if existing is not None:
                    return existing
            enqueue_one(
                job_name=job_name,
                queue=queue,
                tenant=tenant,
                job_id=job_id,
                meta=meta,
                user=user,
                priority=priority,
                run_at=run_at,
                max_attempts=max_attempts,
            )
        return job_id

    @staticmethod
    def _insert(
        job_name: str,
        queue: str,
        tenants: list[uuid.UUID],
        ids: list[uuid.UUID],
        metas: list[str],
        user: uuid.UUID,
        priority: int,
        run_at: datetime | None,
        max_attempts: int,
        singleton_key: str | None,
    ) -> list[uuid.UUID]:
        with django_prepared_cursor() as cur:
            return enqueue(
                cur,
                job_name=job_name,
                queue=queue,
                tenants=tenants,
                ids=ids,
                metas=metas,
                user=user,
                priority=priority,
                run_at=run_at,
                max_attempts=max_attempts,
                singleton_key=singleton_key,
            )

    @staticmethod
    def _find_singleton(tenant: uuid.UUID, key: str) -> uuid.UUID | None:
        with connection.cursor() as cur:
            cur.execute(sql.FIND_SINGLETON, {"tenant": tenant, "singleton_key": key})
            row = cur.fetchone()
        return row[0] if row else None

    # -- recurring jobs ------------------------------------------------------------------------------------------

    def schedule_recurring_job(
        self,
        job_name: str,
        data: dict[str, Any],
        cron: str | timedelta,
        *,
        timezone: str = "UTC",
        schedule_key: str | None = None,
        tenant_id: Any = None,
        user_id: Any = None,
        queue: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult:
        """Create or update (by key) a schedule; each firing becomes its own `jobs` row (in `queue`, else the
        handler's queue at the time it fires)."""
        spec = validation.check_recurring(
            job_name,
            data,
            cron,
            timezone=timezone,
            schedule_key=schedule_key,
            tenant_id=tenant_id,
            user_id=user_id,
            queue=queue,
            metadata=metadata,
        )
        now = dj_timezone.now()
        first = next_tick(
            cron=spec.cron, interval_seconds=spec.interval_seconds, timezone=timezone, anchor=now, after=now
        )
        schedule, _ = Schedule.objects.update_or_create(
            tenant=spec.tenant,
            key=spec.key,
            defaults={
                "job_name": job_name,
                "data": data,
                "metadata": spec.metadata,
                "cron": spec.cron,
                "interval_seconds": spec.interval_seconds,
                "timezone": timezone,
                "user_id": spec.user,
                "runner_type": self.runner_type,
                "queue": spec.queue,
                "next_run_at": first,
            },
        )
        return ScheduleJobResult(job_id=str(schedule.id), external_id=spec.key)

    def set_schedule_paused(self, schedule_id: Any, tenant_id: Any, paused: bool) -> bool:
        schedule = self.find_schedule(schedule_id, tenant_id)
        if schedule is None:
            return False
        updates: dict[str, Any] = {"paused": paused, "updated_at": dj_timezone.now()}
        if not paused:  # resuming does not replay the ticks missed while paused
            now = dj_timezone.now()
            updates["next_run_at"] = next_tick(
                cron=schedule.cron,
                interval_seconds=schedule.interval_seconds,
                timezone=schedule.timezone,
                anchor=now,
                after=now,
            )
        Schedule.objects.filter(pk=schedule.pk).update(**updates)
        return True

    def _schedule_run_now(self, schedule: Schedule) -> ScheduleJobResult:
        return self._enqueue_one(
            schedule.job_name,
            schedule.data,
            None,
            schedule.tenant,
            schedule.user_id,
            None,
            0,
            {**schedule.metadata, "scheduleKey": schedule.key, "triggeredManually": True},
            schedule_id=schedule.id,
            queue=schedule.queue,
        )

    # -- workflows ------------------------------------------------------------------------------------------------

    def schedule_workflow(self, workflow: Workflow) -> WorkflowResult:
        """Every step, edge and record in one statement on Django's connection: inside `transaction.atomic()`
        the workflow exists if and only if the transaction commits."""
        planned = plan(workflow)
        workflows.enqueue_workflow(planned)
        return WorkflowResult(
            workflow_id=str(planned.workflow_id), job_ids=[str(s.job_id) for s in planned.steps]
        )

    def cancel_workflow(self, workflow_id: Any, tenant_id: Any) -> bool:
        wid, tenant = parse_uuid(workflow_id), parse_uuid(tenant_id)
        if wid is None or tenant is None:
            return False
        return workflows.cancel_workflow(wid, tenant) > 0

    def _retry_workflow_step(self, job: Any) -> ScheduleJobResult:
        retry_id = workflows.retry_step(job)
        return ScheduleJobResult(job_id=str(retry_id), external_id=str(retry_id))

    # -- bulk redrive ---------------------------------------------------------------------------------------------

    def retry_batch(self, tenant: uuid.UUID, job_ids: list[uuid.UUID]) -> int:
        """One statement for the batch: each finished job among `job_ids` becomes a new job (see sql.REDRIVE_RETRY)."""
        with transaction.atomic():
            return redrive.retry_batch(tenant, job_ids)

    def cancel_batch(
        self, tenant: uuid.UUID, job_ids: list[uuid.UUID], *, cancelled_by: str | None = None
    ) -> int:
        """One statement for the batch: queued jobs removed and recorded cancelled, running ones told to stop."""
        with transaction.atomic():
            return sum(redrive.cancel_batch(tenant, job_ids, BULK_CANCEL_REASON, cancelled_by))

    # -- inspect and cancel ---------------------------------------------------------------------------------------

    def get_job_status(self, job_id: Any, tenant_id: Any) -> JobStatusInfo | None:
        return load_status(job_id, tenant_id)

    def cancel_job(
        self, job_id: Any, tenant_id: Any, *, reason: str | None = None, cancelled_by: str | None = None
    ) -> bool:
        """Queued: removed and recorded cancelled. Running: flagged (who asked and why recorded at once), ends
        cancelled. Finished or unknown: False. An id of a recurring schedule deletes the schedule.
        """
        jid, tenant = parse_uuid(job_id), parse_uuid(tenant_id)
        if jid is None or tenant is None:
            return False
        deleted, _ = Schedule.objects.filter(pk=jid, tenant=tenant, runner_type=self.runner_type).delete()
        if deleted:
            return True
        params = {"tenant": tenant, "job_id": jid}
        reason = reason or DEFAULT_CANCEL_REASON
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql.CANCEL_QUEUED, params)
            if cur.fetchone():
                tracking.record_cancelled_unstarted(
                    tenant, jid, reason=reason, cancelled_by=cancelled_by, cursor=cur
                )
                return True
            cur.execute(sql.CANCEL_RUNNING, params)
            if cur.fetchone() is None:
                return False
            tracking.record_cancel_requested(
                tenant, jid, reason=reason, cancelled_by=cancelled_by, cursor=cur
            )
            return True

    def is_reachable(self) -> bool:
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() == (1,)
        except Exception:
            return False

    def unserved_queues(self) -> list[UnservedQueue]:
        """Job names with ready jobs and no live worker (heartbeat younger than WORKER_EXPIRY_SECONDS) serving
        them; see sql.UNSERVED."""
        with connection.cursor() as cur:
            cur.execute(
                sql.UNSERVED,
                {"expiry_seconds": float(setting("WORKER_EXPIRY_SECONDS")), "scan_limit": QUEUE_SCAN_LIMIT},
            )
            rows = cur.fetchall()
        return [
            UnservedQueue(
                runner_type=self.runner_type,
                queue=name,
                waiting=waiting,
                fix=(
                    "start `python manage.py runjobworker` on this database with this handler registered "
                    f"(without --jobs, or with --jobs {name})"
                ),
            )
            for name, waiting in rows
        ]
