"""TemporalJobRunner: every job is a GenericJobWorkflow; the same `jobs`/`job_details` rows record it.

Sync methods run the async Temporal client on an event loop of the calling thread (`loop.run_in_this_thread`),
so Django views and commands need no event loop and a call costs no hand-off between threads; the `a`-prefixed
twins await the same calls on the caller's loop. The client is connected once, on a private event-loop thread
owned by the runner (started on first use, stopped by `close()`). Database work always runs in the caller's
thread (sync) or through `sync_to_async`.

A job's row is written (status `pending`) and committed before its workflow starts, so an activity never looks
for a row that is not there yet. Called inside `transaction.atomic()`, the start waits for the commit
(`on_commit`), so a rolled-back transaction starts nothing. If Temporal refuses the start, the row is marked
`failed` (error type RunnerUnavailable) and RunnerUnavailable is raised: a job never stays pending forever;
or, when the factory set `on_unreachable` (JOB_RUNNER_FALLBACK_TO_PGBOSS), the job is handed to that hook
(pgboss) instead.

After Temporal was found unreachable the runner does not ask it again for TEMPORAL_REPROBE_SECONDS (a start then
fails, or is handed over, at once); the first call after that asks one bounded health check, and Temporal is used
again as soon as it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connection, transaction
from django.utils import timezone as dj_timezone
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
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

from .. import outcomes, tracking, uniqueness, validation
from ..conf import env_setting, setting
from ..exceptions import InvalidJobData, RunnerUnavailable
from ..ids import new_id, parse_uuid
from ..models import Job, JobStatus, Schedule
from ..models import Workflow as WorkflowRow
from ..outcomes import DEFAULT_CANCEL_REASON
from ..record_keys import RECORD_BEHIND
from ..registry import JobHandlerRegistry
from ..runners.base import (
    HandOver,
    JobRunner,
    JobStatusInfo,
    ScheduleJobResult,
    UnservedQueue,
    load_job,
    status_from_record,
)
from ..states import Outcome, RunnerType
from ..telemetry import tracing
from ..uniqueness import Debounce, Policy, Throttle, Unique
from ..workflows import Workflow, WorkflowResult, plan
from . import records, workflows
from .client import connect_client
from .inputs import (
    CURRENT_VERSION,
    GRAPH_WORKFLOW_NAME,
    MEMO_RECORD_BEHIND,
    SIGNAL_CANCEL,
    SIGNAL_CANCEL_WORKFLOW,
    WORKFLOW_NAME,
    GraphInput,
    GraphStep,
    JobInput,
    RetrySpec,
)
from .loop import EventLoopThread, run_in_this_thread
from .task_queues import task_queue_for

logger = logging.getLogger("jobscheduler.runners")

T = TypeVar("T")

RUNNER_TYPE = RunnerType.TEMPORAL
#: A worker that polled a task queue this recently is live: Temporal's long poll lasts about a minute, so a live
#: idle worker polls at least that often, while the server keeps listing a stopped one for minutes.
POLLER_LIVE_SECONDS = 90.0
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
    task_queue: str
    unique: Unique | Throttle | None = None


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
        #: The client once connected (the result of `_client`).
        self._connected: Client | None = None
        #: (monotonic time, reason) of the last failure to reach Temporal; None while it answers.
        self._down: tuple[float, str] | None = None
        #: Set by the fallback (JOB_RUNNER_FALLBACK_TO_PGBOSS): runs a job Temporal could not be reached to
        #: start (instead of recording it failed) and gives the caller's result.
        self.on_unreachable: Callable[[HandOver], ScheduleJobResult | None] | None = None

    # -- connection ---------------------------------------------------------------------------------------------

    @classmethod
    def connect(cls, **options: Any) -> TemporalJobRunner:
        """A runner whose client is connected; RunnerUnavailable within TEMPORAL_CONNECT_TIMEOUT_SECONDS, and at
        once for TEMPORAL_REPROBE_SECONDS after a failed connect to the same address."""
        runner = cls(**options)
        failed_at = cls._failed_connects.get(runner.address)
        cooldown = _reprobe_seconds()
        if failed_at is not None and time.monotonic() - failed_at < cooldown:
            runner.close()
            raise RunnerUnavailable(
                f"Temporal at {runner.address} was unreachable {time.monotonic() - failed_at:.1f}s ago; "
                f"not retrying for {cooldown:g}s"
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
        """Stop the runner's loop thread and drop its client (and with it the client's connections)."""
        self._client = self._connected = None
        self._loop.close()

    async def _client_ready(self) -> Client:
        """The one client of this runner, connected on first use (on the loop thread, so callers on every
        thread and loop share one connection attempt; a failure is not kept). Once connected, it is used from
        whichever event loop calls: the SDK resolves each call on the loop that awaits it."""
        client = self._connected
        if client is not None:
            return client
        return await self._loop.arun(self._connect_once())

    async def _connect_once(self) -> Client:
        if self._client is None:
            self._client = asyncio.ensure_future(
                connect_client(self.address, self.namespace, setting("TEMPORAL_CONNECT_TIMEOUT_SECONDS"))
            )
        pending = self._client
        try:
            client = await asyncio.shield(pending)
        except RunnerUnavailable:
            if self._client is pending:
                self._client = None
            raise
        if self._client is pending:
            self._connected = client
        return client

    def _rpc(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a Temporal call for a sync method, in the calling thread (its own event loop, see
        `run_in_this_thread`): no hand-off to another thread and back for every call. Sync code called from
        inside a running event loop hands it to the runner's loop thread instead."""
        try:
            if _loop_running_here():
                return self._loop.run(coro, self.rpc_timeout_seconds)
            return run_in_this_thread(coro, self.rpc_timeout_seconds)
        except TimeoutError as exc:
            raise RunnerUnavailable(f"Temporal at {self.address} did not answer: {exc}") from exc

    async def _arpc(self, coro: Awaitable[T]) -> T:
        """A Temporal call for an async method, awaited on the caller's own loop."""
        return await coro

    # -- reachability -------------------------------------------------------------------------------------------

    @property
    def unreachable_reason(self) -> str | None:
        """Why Temporal was last found unreachable; None while it answers."""
        down = self._down
        return None if down is None else down[1]

    def _went_down(self, cause: BaseException | str) -> str:
        """Remember that Temporal is unreachable, and why (logged once per outage); the reason, naming the
        address."""
        if isinstance(cause, RunnerUnavailable) and self.address in str(cause):
            reason = str(cause)
        else:
            reason = f"Temporal at {self.address} is unreachable: {cause}"
        was_up = self._down is None
        self._down = (time.monotonic(), reason)
        if was_up:
            logger.warning(
                "%s%s",
                reason,
                "; JOB_RUNNER_FALLBACK_TO_PGBOSS is on, so new jobs run on pgboss"
                if self.on_unreachable
                else "",
                extra={"action": "temporal_unreachable", "address": self.address},
            )
        return reason

    def _came_back(self) -> None:
        if self._down is not None:
            self._down = None
            logger.warning(
                "Temporal at %s answers again; new jobs run on Temporal",
                self.address,
                extra={"action": "temporal_reachable", "address": self.address},
            )

    async def _probe(self) -> bool:
        """Whether Temporal answers one bounded health check; within TEMPORAL_REPROBE_SECONDS of a failure,
        False without asking."""
        down = self._down
        if down is not None and time.monotonic() - down[0] < _reprobe_seconds():
            return False
        timeout = float(setting("TEMPORAL_CONNECT_TIMEOUT_SECONDS"))
        try:
            client = await self._client_ready()
            serving = await client.service_client.check_health(timeout=timedelta(seconds=timeout))
        except (RPCError, RunnerUnavailable) as exc:
            self._went_down(exc)
            return False
        if not serving:
            self._went_down("the health check answered NOT_SERVING")
            return False
        self._came_back()
        return True

    def probe(self) -> bool:
        try:
            return self._rpc(self._probe())
        except RunnerUnavailable as exc:
            self._went_down(exc)
            return False

    def ensure_reachable(self) -> TemporalJobRunner:
        """This runner, or RunnerUnavailable (with the reason) when Temporal does not answer."""
        if not self.probe():
            raise RunnerUnavailable(self.unreachable_reason or f"Temporal at {self.address} is unreachable")
        return self

    def is_reachable(self) -> bool:
        return self.probe()

    async def ais_healthy(self) -> bool:
        try:
            return await self._arpc(self._probe()) and not await self._arpc(self._unserved())
        except Exception:
            return False

    def unserved_queues(self) -> list[UnservedQueue]:
        """This runner's task queue when no live worker polls it for workflow or for activity tasks (every job
        started there would wait forever); empty while Temporal is unreachable."""
        try:
            return self._rpc(self._unserved())
        except RunnerUnavailable:
            return []

    async def _unserved(self) -> list[UnservedQueue]:
        if self._down is not None:
            return []
        try:
            client = await self._client_ready()
            described = [
                await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self.namespace,
                        task_queue=TaskQueue(name=self.task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
                        task_queue_type=kind,
                        report_stats=True,
                    ),
                    timeout=timedelta(seconds=self.rpc_timeout_seconds),
                )
                for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            ]
        except (RPCError, RunnerUnavailable) as exc:
            if is_unreachable(exc):
                self._went_down(exc)
            return []
        now = dj_timezone.now()
        live = [
            any(
                (now - p.last_access_time.ToDatetime(tzinfo=UTC)).total_seconds() < POLLER_LIVE_SECONDS
                for p in d.pollers
            )
            for d in described
        ]
        if all(live):
            return []
        return [
            UnservedQueue(
                runner_type=RUNNER_TYPE,
                queue=self.task_queue,
                waiting=sum(d.stats.approximate_backlog_count for d in described),
                fix=(
                    f"start `python manage.py runjobworker --backend temporal` with TEMPORAL_JOB_TASK_QUEUE="
                    f"{self.task_queue} (scheduler and workers must use the same task queue, TEMPORAL_ADDRESS "
                    f"{self.address} and TEMPORAL_NAMESPACE {self.namespace})"
                ),
            )
        ]

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
        queue: str | None = None,
        unique: Policy | None = None,
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
                queue=queue,
                unique=unique,
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
        queue: str | None = None,
        unique: Policy | None = None,
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
                queue=queue,
                unique=unique,
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
        queue: str | None = None,
        unique: Policy | None = None,
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
                queue=queue,
                unique=unique,
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
        queue: str | None = None,
        unique: Policy | None = None,
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
                queue=queue,
                unique=unique,
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
        queue: str | None = None,
        unique: Policy | None = None,
        metadata: dict[str, Any] | None = None,
        run_at: datetime | None = None,
        schedule_id: uuid.UUID | None = None,
    ) -> _JobPlan:
        """Validate everything (nothing is written yet) and decide the job's ids, inside the enqueue span whose
        context the job carries (the span covers the plan, not the start call that follows)."""
        queue = validation.resolve_queue(queue, JobHandlerRegistry.get(job_name).queue)
        with tracing.enqueue_span(
            queue=task_queue_for(self.task_queue, queue), job_type=job_name, backend=RunnerType.TEMPORAL
        ) as (
            trace,
            span,
        ):
            plan = self._plan_traced(
                job_name,
                data,
                tenant_id,
                user_id,
                singleton_key,
                priority,
                metadata,
                run_at,
                schedule_id,
                trace,
                queue,
                unique,
            )
            tracing.set_job_id(span, plan.new_job.job_id)
            return plan

    def _plan_traced(
        self,
        job_name: str,
        data: dict[str, Any],
        tenant_id: Any,
        user_id: Any,
        singleton_key: str | None,
        priority: int,
        metadata: dict[str, Any] | None,
        run_at: datetime | None,
        schedule_id: uuid.UUID | None,
        trace: dict[str, str],
        queue: str,
        unique: Policy | None,
    ) -> _JobPlan:
        spec = JobHandlerRegistry.get(job_name)
        data_json = validation.encode_data(data)
        tenant = validation.resolve_tenant(tenant_id, data)
        user = validation.resolve_user(user_id)
        key = validation.check_singleton_key(singleton_key)
        policy = validation.check_unique(unique, singleton_key=key, run_at=run_at)
        if isinstance(policy, Debounce):
            raise InvalidJobData(
                "Debounce needs the pgboss backend: a Temporal workflow's data cannot be replaced once it is "
                "started (use Throttle or Unique)"
            )
        extra = {**validation.encode_metadata(metadata), **trace}
        job_id = new_id()
        meta_json = tracking.build_metadata(
            data_json,
            extra=extra,
            max_attempts=spec.retry.max_attempts,
            priority=validation.check_priority(priority),
            singleton_key=key,
            schedule_id=schedule_id,
            queue=queue,
            unique_key=policy.key if policy else None,
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
            task_queue=task_queue_for(self.task_queue, queue),
            unique=policy,
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
            version=CURRENT_VERSION,
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
        if plan.unique is not None:
            with transaction.atomic():
                uniqueness.lock(job.tenant, plan.unique.key)
                existing = uniqueness.find_existing(job.tenant, plan.unique)
                if existing is not None:
                    holder = Job.objects.only("external_id").get(tenant=job.tenant, job_id=existing)
                    return ScheduleJobResult(job_id=str(existing), external_id=holder.external_id)
                tracking.record_created([job], status=JobStatus.PENDING, runner_type=RUNNER_TYPE)
        else:
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
        if self._down is not None and not await self._probe():
            return _Started(error=RunnerUnavailable(self._down[1]))
        try:
            client = await self._client_ready()
            handle = await client.start_workflow(
                WORKFLOW_NAME,
                plan.job_input,
                id=plan.workflow_id,
                task_queue=plan.task_queue,
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
            if is_unreachable(exc):
                self._went_down(exc)
            return _Started(error=exc)

    def _record_start(self, plan: _JobPlan, started: _Started) -> ScheduleJobResult:
        job = plan.new_job
        if started.error is not None and self.on_unreachable is not None and is_unreachable(started.error):
            run_at = dj_timezone.now() + plan.start_delay if plan.start_delay else None
            reason = self.unreachable_reason or self._went_down(started.error)
            taken = self.on_unreachable(
                HandOver(
                    job=job,
                    from_runner=RUNNER_TYPE,
                    singleton_key=plan.singleton_key,
                    run_at=run_at,
                    reason=reason,
                )
            )
            if taken is not None:
                return taken
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
        record is behind the workflow (its memo). Unknown, or Temporal known to be unreachable: nothing, the
        record is then the best answer there is."""
        if self._down is not None and not await self._probe():
            return _WorkflowView()
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
            if exc.status == RPCStatusCode.NOT_FOUND:  # the workflow already closed
                return
            if is_unreachable(exc):
                reason = self._went_down(exc)
                raise RunnerUnavailable(
                    f"{reason}: the cancel of workflow {workflow_id} was not delivered"
                ) from exc
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
        queue: str | None = None,
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
            queue=queue,
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
            queue=spec.queue,
        )

    async def _upsert_schedule(self, plan: _SchedulePlan, existing: Schedule | None) -> datetime | None:
        """Create the Temporal Schedule, or replace its spec and payload when one has this id already.

        Never falls back to pgboss: a pgboss copy would fire beside the Temporal Schedule once Temporal is back,
        so while Temporal is unreachable this raises RunnerUnavailable."""
        if self._down is not None and not await self._probe():
            raise RunnerUnavailable(f"{self._down[1]}: schedule {plan.key!r} was not saved")
        try:
            return await self._write_schedule(plan, existing)
        except RPCError as exc:
            if not is_unreachable(exc):
                raise
            reason = self._went_down(exc)
            raise RunnerUnavailable(f"{reason}: schedule {plan.key!r} was not saved") from exc

    async def _write_schedule(self, plan: _SchedulePlan, existing: Schedule | None) -> datetime | None:
        client = await self._client_ready()
        schedule_id = existing.id if existing else plan.new_id
        queue = plan.queue or JobHandlerRegistry.get(plan.job_name).queue
        job_input = self._job_input(
            plan.job_name,
            plan.tenant,
            plan.user,
            data=plan.data,
            metadata={**plan.metadata, "scheduleKey": plan.key},
            schedule_id=str(schedule_id),
            queue=queue,
        )
        if isinstance(plan.when, timedelta):
            spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=plan.when)])
        else:
            spec = ScheduleSpec(cron_expressions=[temporal_cron(plan.when)], time_zone_name=plan.timezone)
        schedule = TemporalSchedule(
            action=ScheduleActionStartWorkflow(
                WORKFLOW_NAME,
                job_input,
                id=f"{plan.temporal_id}:run",
                task_queue=task_queue_for(self.task_queue, queue),
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
                queue=schedule.queue,
                metadata={**schedule.metadata, "scheduleKey": schedule.key, "triggeredManually": True},
                schedule_id=schedule.id,
            )
        )

    # -- workflows ------------------------------------------------------------------------------------------------

    def schedule_workflow(self, workflow: Workflow) -> WorkflowResult:
        """Every step's row `pending` in the caller's transaction; the orchestrating workflow (graph.py) starts
        after the commit, or at once outside a transaction."""
        planned = plan(workflow)
        graph = GraphInput(
            workflow_id=str(planned.workflow_id),
            name=planned.name,
            tenant=str(planned.tenant),
            steps=[
                GraphStep(
                    job=self._job_input(s.job_name, planned.tenant, planned.user, job_id=s.job_id),
                    depends_on=[str(d) for d in s.depends_on],
                    run_after_failure=s.run_after_failure,
                )
                for s in planned.steps
            ],
        )
        deferred = connection.in_atomic_block
        with transaction.atomic():
            workflows.write_rows(planned)
        external_id = workflows.graph_workflow_id(planned.workflow_id)
        step_ids = [s.job_id for s in planned.steps]
        if deferred:
            transaction.on_commit(
                lambda: self._start_graph_after_commit(graph, external_id, planned.tenant, step_ids)
            )
        else:
            self._start_graph(graph, external_id, planned.tenant, step_ids)
        return WorkflowResult(workflow_id=str(planned.workflow_id), job_ids=[str(i) for i in step_ids])

    def cancel_workflow(self, workflow_id: Any, tenant_id: Any) -> bool:
        """Signal the workflow's orchestrating runs (the first and any resuming one): steps not yet started are
        cancelled, running ones asked to stop."""
        row = self._workflow_row(workflow_id, tenant_id)
        if row is None:
            return False
        steps = list(Job.objects.filter(tenant=row.tenant).in_workflow(row.id))
        if all(s.is_finished for s in steps):
            return False
        targets = [workflows.graph_workflow_id(row.id)] + [
            workflows.graph_workflow_id(row.id, s.job_id) for s in steps if s.meta.get("retryOf")
        ]
        self._rpc(self._signal_workflows(targets))
        return True

    def _retry_workflow_step(self, job: Any) -> ScheduleJobResult:
        retry_id = new_id()
        deferred = connection.in_atomic_block
        with transaction.atomic():
            resumed = workflows.write_retry(job, retry_id)
            retry = Job.objects.get(tenant=job.tenant, job_id=retry_id)
            steps = list(Job.objects.filter(tenant=job.tenant).in_workflow(job.meta["workflowId"]))
        run = [retry, *resumed]
        graph = GraphInput(
            workflow_id=str(job.meta["workflowId"]),
            name=str(job.meta.get("workflowName") or ""),
            tenant=str(job.tenant),
            steps=[
                GraphStep(
                    job=self._job_input(s.type, s.tenant, s.user_id, job_id=s.job_id),
                    depends_on=[str(d) for d in s.meta.get("dependsOn") or []],
                    run_after_failure=bool(s.meta.get("runAfterFailure")),
                )
                for s in run
            ],
            settled=workflows.settled_outside(run, steps),
            names={str(s.job_id): s.type for s in steps},
        )
        external_id = workflows.graph_workflow_id(job.meta["workflowId"], retry_id)
        step_ids = [s.job_id for s in run]
        if deferred:
            transaction.on_commit(
                lambda: self._start_graph_after_commit(graph, external_id, job.tenant, step_ids)
            )
        else:
            self._start_graph(graph, external_id, job.tenant, step_ids)
        return ScheduleJobResult(job_id=str(retry_id), external_id=f"job-{retry_id}")

    def _workflow_row(self, workflow_id: Any, tenant_id: Any) -> WorkflowRow | None:
        wid, tenant = parse_uuid(workflow_id), parse_uuid(tenant_id)
        if wid is None or tenant is None:
            return None
        return WorkflowRow.objects.filter(pk=wid, tenant=tenant, runner_type=self.runner_type).first()

    def _start_graph(self, graph: GraphInput, external_id: str, tenant: uuid.UUID, step_ids: list) -> None:
        """Start the orchestrating workflow; when Temporal refuses, the steps are recorded failed, loudly."""
        try:
            self._rpc(self._start_graph_rpc(graph, external_id))
        except (RPCError, RunnerUnavailable) as exc:
            error = f"Temporal refused to start workflow {graph.name!r} at {self.address}: {exc}"
            tracking.record_finished(
                [
                    tracking.AttemptOutcome(
                        tenant=tenant,
                        job_id=job_id,
                        attempt=0,
                        outcome=Outcome.FAILED,
                        error=error,
                        error_type=RunnerUnavailable.__name__,
                    )
                    for job_id in step_ids
                ]
            )
            raise RunnerUnavailable(error) from exc

    def _start_graph_after_commit(
        self, graph: GraphInput, external_id: str, tenant: uuid.UUID, step_ids: list
    ) -> None:
        try:
            self._start_graph(graph, external_id, tenant, step_ids)
        except RunnerUnavailable:
            logger.exception("Workflow %s could not be started after commit", graph.workflow_id)

    async def _start_graph_rpc(self, graph: GraphInput, external_id: str) -> None:
        client = await self._client_ready()
        await client.start_workflow(
            GRAPH_WORKFLOW_NAME,
            graph,
            id=external_id,
            task_queue=self.task_queue,
            memo={"workflowId": graph.workflow_id, "tenant": graph.tenant, "name": graph.name},
            rpc_timeout=timedelta(seconds=self.rpc_timeout_seconds),
        )

    async def _signal_workflows(self, external_ids: list[str]) -> None:
        client = await self._client_ready()
        for external_id in external_ids:
            try:
                await client.get_workflow_handle(external_id).signal(
                    SIGNAL_CANCEL_WORKFLOW, {"reason": "Workflow cancelled"}
                )
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:  # NOT_FOUND: that run already closed
                    raise

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
    queue: str | None = None

    @property
    def new_id(self) -> uuid.UUID:
        """A fresh schedule row id, stable for this plan (derived from the Temporal id)."""
        return uuid.uuid5(uuid.NAMESPACE_URL, self.temporal_id)


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def is_unreachable(exc: BaseException) -> bool:
    """An error that says Temporal could not be reached (so nothing was started), as opposed to a refusal or a
    timeout after which the call may still have taken effect."""
    if isinstance(exc, RunnerUnavailable):
        return True
    return isinstance(exc, RPCError) and exc.status == RPCStatusCode.UNAVAILABLE


def _reprobe_seconds() -> float:
    return float(setting("TEMPORAL_REPROBE_SECONDS"))


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
        "queue": plan.queue,
        "next_run_at": next_run,
    }
    row, _ = Schedule.objects.update_or_create(
        tenant=plan.tenant, key=plan.key, defaults=fields, create_defaults={**fields, "id": plan.new_id}
    )
    return ScheduleJobResult(job_id=str(row.id), external_id=plan.temporal_id)
