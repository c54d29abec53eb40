"""TemporalJobRunner: every job is a GenericJobWorkflow; the same `jobs`/`job_details` rows record it.

Sync methods run the async Temporal client on a private event-loop thread owned by the runner (started on first
use, stopped by `close()`), so Django views and commands need no event loop; the `a`-prefixed twins await the
same calls natively. Database work always runs in the caller's thread (sync) or through `sync_to_async`.

A job's row is written (status `pending`) and committed before its workflow starts, so an activity never looks
for a row that is not there yet. Called inside `transaction.atomic()`, the start waits for the commit
(`on_commit`), so a rolled-back transaction starts nothing. If Temporal refuses the start, the row is marked
`failed` (error type RunnerUnavailable) and RunnerUnavailable is raised: a job never stays pending forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone as dj_timezone
from temporalio.client import (
    Client,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    WorkflowExecutionStatus,
)
from temporalio.client import Schedule as TemporalSchedule
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from .. import outcomes, tracking, validation
from ..conf import env_setting, setting
from ..exceptions import RunnerUnavailable
from ..ids import new_id
from ..models import Job, JobStatus, Schedule
from ..outcomes import DEFAULT_CANCEL_REASON
from ..record_keys import RECORD_BEHIND
from ..registry import JobHandlerRegistry
from ..runners.base import JobRunner, JobStatusInfo, ScheduleJobResult, load_job, status_from_record
from ..states import RunnerType
from . import records
from .client import connect_client
from .inputs import MEMO_RECORD_BEHIND, SIGNAL_CANCEL, WORKFLOW_NAME, JobInput, RetrySpec
from .loop import EventLoopThread

logger = logging.getLogger("jobscheduler.runners")

T = TypeVar("T")

RUNNER_TYPE = RunnerType.TEMPORAL
STARTED_STATUSES = (JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.ACTIVE)
SINGLETON_CLOSE_WAIT_SECONDS = 5.0  # a singleton whose record is final gets this long to close its workflow


@dataclass(frozen=True, slots=True)
class _JobPlan:
    """A validated job, ready to record and start."""

    new_job: tracking.NewJob
    workflow_id: str
    job_input: JobInput
    singleton_key: str | None
    start_delay: timedelta | None


@dataclass(frozen=True, slots=True)
class _Started:
    """What the start call gave: a run, the job already holding the singleton, or an error."""

    run_id: str | None = None
    existing_job_id: str | None = None
    error: BaseException | None = None


class TemporalJobRunner(JobRunner):
    runner_type = RunnerType.TEMPORAL

    #: Upper bound of one Temporal call made for a sync method.
    rpc_timeout_seconds = 30.0
    #: After a failed connect to an address, `connect()` fails fast for this long instead of retrying.
    reconnect_cooldown_seconds = 10.0
    #: Ticks a schedule missed (server or workers down) are still run when at most this late.
    schedule_catchup_window = timedelta(minutes=1)

    _failed_connects: dict[str, float] = {}

    def __init__(
        self,
        *,
        address: str | None = None,
        namespace: str | None = None,
        task_queue: str | None = None,
        heartbeat_timeout_ms: int | None = None,
    ) -> None:
        self.address = address or env_setting("TEMPORAL_ADDRESS")
        self.namespace = namespace or env_setting("TEMPORAL_NAMESPACE")
        self.task_queue = task_queue or env_setting("TEMPORAL_JOB_TASK_QUEUE")
        # A worker silent this long is dead and the attempt is retried; cancellation reaches a running handler
        # within about 0.8x this (Temporal delivers it on a heartbeat).
        self.heartbeat_timeout_ms = heartbeat_timeout_ms or int(
            float(setting("TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS")) * 1000
        )
        self._loop = EventLoopThread("jobscheduler-temporal")
        self._client: Awaitable[Client] | None = None

    # -- connection ---------------------------------------------------------------------------------------------

    @classmethod
    def connect(cls, **options: Any) -> TemporalJobRunner:
        """A runner whose client is connected; RunnerUnavailable within TEMPORAL_CONNECT_TIMEOUT_SECONDS."""
        runner = cls(**options)
        failed_at = cls._failed_connects.get(runner.address)
        if failed_at is not None and time.monotonic() - failed_at < cls.reconnect_cooldown_seconds:
            raise RunnerUnavailable(
                f"Temporal at {runner.address} was unreachable {time.monotonic() - failed_at:.1f}s ago; "
                f"not retrying for {cls.reconnect_cooldown_seconds:g}s"
            )
        try:
            runner._rpc(runner._client_ready())
        except RunnerUnavailable:
            cls._failed_connects[runner.address] = time.monotonic()
            runner.close()
            raise
        cls._failed_connects.pop(runner.address, None)
        return runner

    def close(self) -> None:
        """Stop the runner's loop thread (and with it the client's connections)."""
        self._client = None
        self._loop.close()

    async def _client_ready(self) -> Client:
        """The one client of this runner, connected on first use on the loop thread (a failure is not kept)."""
        if self._client is None:
            self._client = asyncio.ensure_future(
                connect_client(self.address, self.namespace, setting("TEMPORAL_CONNECT_TIMEOUT_SECONDS"))
            )
        pending = self._client
        try:
            return await asyncio.shield(pending)
        except RunnerUnavailable:
            if self._client is pending:
                self._client = None
            raise

    def _rpc(self, coro: Awaitable[T]) -> T:
        try:
            return self._loop.run(coro, self.rpc_timeout_seconds)
        except TimeoutError as exc:
            raise RunnerUnavailable(f"Temporal at {self.address} did not answer: {exc}") from exc

    async def _arpc(self, coro: Awaitable[T]) -> T:
        return await self._loop.arun(coro)

    def is_healthy(self) -> bool:
        try:
            return self._rpc(self._check_health())
        except Exception:
            return False

    async def ais_healthy(self) -> bool:
        try:
            return await self._arpc(self._check_health())
        except Exception:
            return False

    async def _check_health(self) -> bool:
        client = await self._client_ready()
        return await client.service_client.check_health(timeout=timedelta(seconds=5))

    # -- one-off jobs -------------------------------------------------------------------------------------------

    def schedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult:
        return self._submit(
            self._plan(
                job_name,
                data,
                tenant_id=tenant_id,
                user_id=user_id,
                singleton_key=singleton_key,
                priority=priority,
                metadata=metadata,
            )
        )

    async def aschedule_job(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult:
        return await self._asubmit(
            self._plan(
                job_name,
                data,
                tenant_id=tenant_id,
                user_id=user_id,
                singleton_key=singleton_key,
                priority=priority,
                metadata=metadata,
            )
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
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult:
        return self._submit(
            self._plan(
                job_name,
                data,
                run_at=validation.check_run_at(run_at),
                tenant_id=tenant_id,
                user_id=user_id,
                singleton_key=singleton_key,
                priority=priority,
                metadata=metadata,
            )
        )

    async def aschedule_job_at(
        self,
        job_name: str,
        data: dict[str, Any],
        run_at: datetime,
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
    ) -> ScheduleJobResult:
        return await self._asubmit(
            self._plan(
                job_name,
                data,
                run_at=validation.check_run_at(run_at),
                tenant_id=tenant_id,
                user_id=user_id,
                singleton_key=singleton_key,
                priority=priority,
                metadata=metadata,
            )
        )

    def _plan(
        self,
        job_name: str,
        data: dict[str, Any],
        *,
        tenant_id: Any = None,
        user_id: Any = None,
        singleton_key: str | None = None,
        priority: int = 0,
        metadata: dict[str, Any] | None = None,
        run_at: datetime | None = None,
        schedule_id: uuid.UUID | None = None,
    ) -> _JobPlan:
        """Validate everything (nothing is written yet) and decide the job's ids."""
        spec = JobHandlerRegistry.get(job_name)
        data_json = validation.encode_data(data)
        tenant = validation.resolve_tenant(tenant_id, data)
        user = validation.resolve_user(user_id)
        key = validation.check_singleton_key(singleton_key)
        extra = validation.encode_metadata(metadata)
        job_id = new_id()
        meta_json = tracking.build_metadata(
            data_json,
            extra=extra,
            max_attempts=spec.retry.max_attempts,
            priority=validation.check_priority(priority),
            singleton_key=key,
            schedule_id=schedule_id,
            timeout_ms=spec.timeout_ms,
        )
        delay = None
        if run_at is not None:
            delay = max(run_at - dj_timezone.now(), timedelta(0)) or None
        return _JobPlan(
            new_job=tracking.NewJob(tenant, job_id, job_name, meta_json, user),
            workflow_id=f"job-{tenant}-singleton-{key}" if key else f"job-{job_id}",
            job_input=self._job_input(job_name, tenant, user, job_id=job_id),
            singleton_key=key,
            start_delay=delay,
        )

    def _job_input(self, job_name: str, tenant: uuid.UUID, user: uuid.UUID, **fields: Any) -> JobInput:
        spec = JobHandlerRegistry.get(job_name)
        job_id = fields.pop("job_id", None)
        return JobInput(
            job_name=job_name,
            tenant=str(tenant),
            job_id=str(job_id) if job_id else None,
            user_id=str(user),
            retry=RetrySpec(
                max_attempts=spec.retry.max_attempts,
                backoff_coefficient=spec.retry.backoff_coefficient,
                initial_interval_ms=spec.retry.initial_interval_ms,
                max_interval_ms=spec.retry.max_interval_ms,
                non_retryable_errors=list(spec.retry.non_retryable_errors),
            ),
            timeout_ms=spec.timeout_ms,
            heartbeat_timeout_ms=self.heartbeat_timeout_ms,
            **fields,
        )

    def _submit(self, plan: _JobPlan) -> ScheduleJobResult:
        done = self._record_created(plan)
        if done is not None:
            return done
        return self._record_start(plan, self._rpc(self._start(plan)))

    async def _asubmit(self, plan: _JobPlan) -> ScheduleJobResult:
        done = await sync_to_async(self._record_created)(plan)
        if done is not None:
            return done
        started = await self._arpc(self._start(plan))
        return await sync_to_async(self._record_start)(plan, started)

    def _record_created(self, plan: _JobPlan) -> ScheduleJobResult | None:
        """Write the pending row; a result when there is nothing left to do now (singleton held, or the start
        waits for the caller's transaction to commit)."""
        job = plan.new_job
        if plan.singleton_key:
            # Only a row whose workflow started holds the key; between pending rows, Temporal's id conflict
            # decides which one runs, and every caller gets that one's id (the workflow memo's jobId).
            holder = (
                Job.objects.filter(tenant=job.tenant, runner_type=RUNNER_TYPE, status__in=STARTED_STATUSES)
                .filter(metadata__singletonKey=plan.singleton_key)
                .only("job_id", "external_id")
                .first()
            )
            if holder is not None:
                return ScheduleJobResult(job_id=str(holder.job_id), external_id=holder.external_id)
        tracking.record_created([job], status=JobStatus.PENDING, runner_type=RUNNER_TYPE)
        if connection.in_atomic_block:
            transaction.on_commit(lambda: self._start_after_commit(plan))
            return ScheduleJobResult(job_id=str(job.job_id), external_id=plan.workflow_id)
        return None

    def _start_after_commit(self, plan: _JobPlan) -> None:
        try:
            self._record_start(plan, self._rpc(self._start(plan)))
        except RunnerUnavailable:
            logger.exception("Job %s could not be started after commit", plan.new_job.job_id)

    async def _start(self, plan: _JobPlan, *, after_close: bool = False) -> _Started:
        job = plan.new_job
        try:
            client = await self._client_ready()
            handle = await client.start_workflow(
                WORKFLOW_NAME,
                plan.job_input,
                id=plan.workflow_id,
                task_queue=self.task_queue,
                # One workflow per id while it runs (a second singleton start fails and returns the holder);
                # an id whose workflow has closed may be used again by the next singleton job.
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                start_delay=plan.start_delay,
                memo={"jobId": str(job.job_id), "tenant": str(job.tenant), "jobName": job.type},
                rpc_timeout=timedelta(seconds=self.rpc_timeout_seconds),
            )
            return _Started(run_id=handle.result_run_id)
        except WorkflowAlreadyStartedError:
            try:
                handle = client.get_workflow_handle(plan.workflow_id)
                holder = await (await handle.describe()).memo_value("jobId", None)
            except RPCError as exc:
                return _Started(error=exc)
            if holder and not after_close and await sync_to_async(records.is_finished)(holder, job.tenant):
                # The holder's record is final and its workflow is only closing: the key is free in a moment.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(handle.result(), timeout=SINGLETON_CLOSE_WAIT_SECONDS)
                return await self._start(plan, after_close=True)
            return _Started(existing_job_id=holder)
        except (RPCError, RunnerUnavailable) as exc:
            return _Started(error=exc)

    def _record_start(self, plan: _JobPlan, started: _Started) -> ScheduleJobResult:
        job = plan.new_job
        if started.error is not None:
            error = RunnerUnavailable(f"Temporal refused to start the job at {self.address}: {started.error}")
            refused = outcomes.failed(
                job.tenant, job.job_id, 0, error, will_retry=False, with_traceback=False
            )
            tracking.record_finished([refused])
            raise error from started.error
        if started.run_id is None:
            reason = f"Duplicate of singleton job {started.existing_job_id} (key {plan.singleton_key!r})"
            tracking.record_cancelled_unstarted(job.tenant, job.job_id, reason=reason)
            return ScheduleJobResult(job_id=str(started.existing_job_id), external_id=plan.workflow_id)
        tracking.record_queued(
            job.tenant, job.job_id, external_id=plan.workflow_id, external_run_id=started.run_id
        )
        return ScheduleJobResult(job_id=str(job.job_id), external_id=plan.workflow_id)

    # -- status and cancellation ------------------------------------------------------------------------------

    def get_job_status(self, job_id: Any, tenant_id: Any) -> JobStatusInfo | None:
        job = load_job(job_id, tenant_id)
        if job is None:
            return None
        if not records.is_live_temporal(job):
            return status_from_record(job)
        view = self._rpc(self._workflow_view(job.external_id))
        return _status(records.reconcile(job, view.closed), view)

    async def aget_job_status(self, job_id: Any, tenant_id: Any) -> JobStatusInfo | None:
        job = await sync_to_async(load_job)(job_id, tenant_id)
        if job is None:
            return None
        if not records.is_live_temporal(job):
            return status_from_record(job)
        view = await self._arpc(self._workflow_view(job.external_id))
        return _status(await sync_to_async(records.reconcile)(job, view.closed), view)

    async def _workflow_view(self, workflow_id: str) -> _WorkflowView:
        """What Temporal says of a live job's workflow: closed (the record may then be stale), and whether the
        record is behind the workflow (its memo). Unknown or unreachable: nothing, the record is the answer."""
        try:
            client = await self._client_ready()
            desc = await client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=timedelta(seconds=self.rpc_timeout_seconds)
            )
            behind = bool(await desc.memo_value(MEMO_RECORD_BEHIND, False))
        except (RPCError, RunnerUnavailable) as exc:
            logger.debug("Could not describe workflow %s: %s", workflow_id, exc)
            return _WorkflowView()
        closed = None if desc.status == WorkflowExecutionStatus.RUNNING else desc.status
        return _WorkflowView(closed=closed, record_behind=behind)

    def cancel_job(
        self, job_id: Any, tenant_id: Any, *, reason: str | None = None, cancelled_by: str | None = None
    ) -> bool:
        """Cancel a job (its workflow gets the `cancelJob` signal) or delete a recurring schedule by its id."""
        target = self._cancel_target(job_id, tenant_id)
        if isinstance(target, Schedule):
            self._rpc(self._delete_schedule(target.external_id))
            target.delete()
            return True
        if target is None:
            return False
        records.cancel_unstarted(target, reason, cancelled_by)
        self._rpc(self._signal_cancel(target.external_id, reason, cancelled_by))
        return True

    async def acancel_job(
        self, job_id: Any, tenant_id: Any, *, reason: str | None = None, cancelled_by: str | None = None
    ) -> bool:
        target = await sync_to_async(self._cancel_target)(job_id, tenant_id)
        if isinstance(target, Schedule):
            await self._arpc(self._delete_schedule(target.external_id))
            await target.adelete()
            return True
        if target is None:
            return False
        await sync_to_async(records.cancel_unstarted)(target, reason, cancelled_by)
        await self._arpc(self._signal_cancel(target.external_id, reason, cancelled_by))
        return True

    async def _signal_cancel(
        self, workflow_id: str | None, reason: str | None, cancelled_by: str | None
    ) -> None:
        if not workflow_id:
            return
        client = await self._client_ready()
        try:
            await client.get_workflow_handle(workflow_id).signal(
                SIGNAL_CANCEL, {"reason": reason or DEFAULT_CANCEL_REASON, "cancelledBy": cancelled_by}
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: the workflow already closed
                raise

    # -- recurring jobs -----------------------------------------------------------------------------------------

    def schedule_recurring_job(
        self, job_name: str, data: dict[str, Any], cron: str | timedelta, **options: Any
    ) -> ScheduleJobResult:
        plan = self._plan_schedule(job_name, data, cron, **options)
        existing = records.schedule_row(plan.tenant, plan.key)
        next_run = self._rpc(self._upsert_schedule(plan, existing))
        return _save_schedule_row(plan, existing, next_run)

    async def aschedule_recurring_job(
        self, job_name: str, data: dict[str, Any], cron: str | timedelta, **options: Any
    ) -> ScheduleJobResult:
        plan = self._plan_schedule(job_name, data, cron, **options)
        existing = await sync_to_async(records.schedule_row)(plan.tenant, plan.key)
        next_run = await self._arpc(self._upsert_schedule(plan, existing))
        return await sync_to_async(_save_schedule_row)(plan, existing, next_run)

    def _plan_schedule(
        self,
        job_name: str,
        data: dict[str, Any],
        cron: str | timedelta,
        *,
        timezone: str = "UTC",
        schedule_key: str | None = None,
        tenant_id: Any = None,
        user_id: Any = None,
        metadata: dict[str, Any] | None = None,
    ) -> _SchedulePlan:
        spec = validation.check_recurring(
            job_name,
            data,
            cron,
            timezone=timezone,
            schedule_key=schedule_key,
            tenant_id=tenant_id,
            user_id=user_id,
            metadata=metadata,
        )
        key, tenant, user, when, extra = spec.key, spec.tenant, spec.user, spec.when, spec.metadata
        return _SchedulePlan(
            key=key,
            tenant=tenant,
            user=user,
            job_name=job_name,
            data=data,
            when=when,
            timezone=timezone,
            metadata=extra,
            temporal_id=f"jobschedule:{tenant}:{key}",
        )

    async def _upsert_schedule(self, plan: _SchedulePlan, existing: Schedule | None) -> datetime | None:
        """Create the Temporal Schedule, or replace its spec and payload when one has this id already."""
        client = await self._client_ready()
        schedule_id = existing.id if existing else plan.new_id
        job_input = self._job_input(
            plan.job_name,
            plan.tenant,
            plan.user,
            data=plan.data,
            metadata={**plan.metadata, "scheduleKey": plan.key},
            schedule_id=str(schedule_id),
        )
        if isinstance(plan.when, timedelta):
            spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=plan.when)])
        else:
            spec = ScheduleSpec(cron_expressions=[temporal_cron(plan.when)], time_zone_name=plan.timezone)
        schedule = TemporalSchedule(
            action=ScheduleActionStartWorkflow(
                WORKFLOW_NAME, job_input, id=f"{plan.temporal_id}:run", task_queue=self.task_queue
            ),
            spec=spec,
            # Like the pgboss cron: every tick runs, even while an earlier run is still going.
            policy=SchedulePolicy(
                overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=self.schedule_catchup_window
            ),
            state=ScheduleState(paused=bool(existing and existing.paused)),
        )
        handle = client.get_schedule_handle(plan.temporal_id)
        try:
            await client.create_schedule(plan.temporal_id, schedule)
        except ScheduleAlreadyRunningError:
            await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
        desc = await handle.describe()
        return desc.info.next_action_times[0] if desc.info.next_action_times else None

    async def _delete_schedule(self, temporal_id: str | None) -> None:
        if not temporal_id:
            return
        client = await self._client_ready()
        try:
            await client.get_schedule_handle(temporal_id).delete()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise

    def set_schedule_paused(self, schedule_id: Any, tenant_id: Any, paused: bool) -> bool:
        schedule = self.find_schedule(schedule_id, tenant_id)
        if schedule is None:
            return False
        self._rpc(self._pause(schedule.external_id, paused))
        Schedule.objects.filter(pk=schedule.pk).update(paused=paused, updated_at=dj_timezone.now())
        return True

    async def _pause(self, temporal_id: str, paused: bool) -> None:
        client = await self._client_ready()
        handle = client.get_schedule_handle(temporal_id)
        if paused:
            await handle.pause(note="Paused through django-jobscheduler")
        else:
            await handle.unpause(note="Resumed through django-jobscheduler")

    def _schedule_run_now(self, schedule: Schedule) -> ScheduleJobResult:
        return self._submit(
            self._plan(
                schedule.job_name,
                schedule.data,
                tenant_id=schedule.tenant,
                user_id=schedule.user_id,
                metadata={**schedule.metadata, "scheduleKey": schedule.key, "triggeredManually": True},
                schedule_id=schedule.id,
            )
        )

    def _cancel_target(self, job_id: Any, tenant_id: Any) -> Job | Schedule | None:
        """The schedule with this id, or the live Temporal job; None when there is nothing to cancel."""
        schedule = self.find_schedule(job_id, tenant_id)
        if schedule is not None:
            return schedule
        job = load_job(job_id, tenant_id)
        return job if job is not None and records.is_live_temporal(job, with_workflow=False) else None


@dataclass(frozen=True, slots=True)
class _WorkflowView:
    closed: WorkflowExecutionStatus | None = None
    record_behind: bool = False


def _status(job: Job, view: _WorkflowView) -> JobStatusInfo:
    """The record's status; while the record is behind its workflow (the database was away), it says so
    (`metadata["recordBehind"]`), so a job that ran is not mistaken for one stuck or failed."""
    info = status_from_record(job)
    if view.record_behind and not job.is_finished:
        return replace(info, metadata={**info.metadata, RECORD_BEHIND: True})
    return info


@dataclass(frozen=True, slots=True)
class _SchedulePlan:
    key: str
    tenant: uuid.UUID
    user: uuid.UUID
    job_name: str
    data: dict[str, Any]
    when: str | timedelta
    timezone: str
    metadata: dict[str, Any]
    temporal_id: str

    @property
    def new_id(self) -> uuid.UUID:
        """A fresh schedule row id, stable for this plan (derived from the Temporal id)."""
        return uuid.uuid5(uuid.NAMESPACE_URL, self.temporal_id)


def temporal_cron(spec: str) -> str:
    """Our cron in Temporal's syntax: Temporal reads a 6th field as the year, ours is seconds first, so a
    6-field expression becomes Temporal's 7-field form (seconds first, any year)."""
    fields = spec.split()
    return " ".join([*fields, "*"]) if len(fields) == 6 else spec


def _save_schedule_row(
    plan: _SchedulePlan, existing: Schedule | None, next_run: datetime | None
) -> ScheduleJobResult:
    """Mirror the Temporal Schedule into the schedules table, so the dashboard lists it with pgboss's."""
    fields = {
        "job_name": plan.job_name,
        "data": plan.data,
        "metadata": plan.metadata,
        "cron": plan.when if isinstance(plan.when, str) else "",
        "interval_seconds": plan.when.total_seconds() if isinstance(plan.when, timedelta) else None,
        "timezone": plan.timezone,
        "user_id": plan.user,
        "runner_type": RUNNER_TYPE,
        "external_id": plan.temporal_id,
        "next_run_at": next_run,
    }
    row, _ = Schedule.objects.update_or_create(
        tenant=plan.tenant, key=plan.key, defaults=fields, create_defaults={**fields, "id": plan.new_id}
    )
    return ScheduleJobResult(job_id=str(row.id), external_id=plan.temporal_id)
