"""The activities of GenericJobWorkflow: run a handler attempt, create a scheduled run's record, finalize.

Activities are `async def` on the worker's event loop (so they can heartbeat and receive cancellation), but
nothing Django runs on that loop: handlers run on a handler thread pool, and every monitoring-record write
runs on a small DB thread pool through `records` (which writes only via `tracking`). Both pools close their
database connections when the worker stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from django.db import close_old_connections, connections
from temporalio import activity
from temporalio.exceptions import ApplicationError

from .. import tracking
from ..context import JobContext, activate, deactivate
from ..exceptions import JobHandlerNotFound, JobTimeout
from ..registry import HandlerSpec, JobHandlerRegistry, RetryPolicy
from ..states import Outcome, RunnerType
from ..telemetry import metrics, tracing
from . import records
from .inputs import (
    ACTIVITY_CREATE,
    ACTIVITY_FINALIZE,
    ACTIVITY_RUN,
    ACTIVITY_STEP_QUEUED,
    SIGNAL_PROGRESS,
    AttemptInput,
    CreateInput,
    FinalizeInput,
    RetrySpec,
    StepQueuedInput,
)

logger = logging.getLogger("jobscheduler.temporal")

T = TypeVar("T")

#: Seconds a cancelled handler gets to notice `is_cancelled` and stop before the attempt is recorded cancelled.
CANCEL_GRACE_SECONDS = 10.0


class WorkerShutdown(Exception):
    """The worker stopped while the attempt ran; Temporal retries it elsewhere if attempts remain."""


def _with_connections(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in a pool thread with a usable connection, dropping it when stale (CONN_MAX_AGE applies)."""
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


#: Seconds the worker waits at shutdown for its pool threads to close their database connections.
POOL_CLOSE_TIMEOUT_SECONDS = 5.0


def _close_thread_connections(barrier: threading.Barrier) -> None:
    connections.close_all()
    # A broken barrier means another thread is still busy (a handler ignoring cancellation); ours is closed.
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=POOL_CLOSE_TIMEOUT_SECONDS)


def close_pool(pool: ThreadPoolExecutor, size: int) -> None:
    """Close the DB connection of every idle thread of `pool`, then the pool, without waiting on a stuck handler.

    The barrier holds each close task until all have started, so the `size` tasks land on `size` threads.
    """
    barrier = threading.Barrier(size)
    closing = [pool.submit(_close_thread_connections, barrier) for _ in range(size)]
    wait(closing, timeout=POOL_CLOSE_TIMEOUT_SECONDS * 2)
    pool.shutdown(wait=False, cancel_futures=True)


class TemporalJobContext(JobContext):
    """`current_job()` inside a Temporal attempt: progress and steps go to the record (and progress to the
    workflow's queryable state); `is_cancelled` turns true when the workflow cancels the attempt."""

    def __init__(self, *, run_db: Callable[..., Any], on_progress: Callable[[float, str | None], None], **kw):
        super().__init__(**kw)
        self._run_db = run_db
        self._on_progress = on_progress

    def _save_progress(self, pct: float, message: str | None) -> None:
        self._run_db(tracking.record_progress, self.tenant, self.job_id, pct, message)
        self._on_progress(pct, message)

    def _save_step(self, name: str, status: str, result_json: str | None) -> None:
        self._run_db(
            tracking.record_step, self.tenant, self.job_id, name, status, result_json, attempt=self.attempt
        )


def _call_handler(spec: HandlerSpec, ctx: TemporalJobContext, timeout_s: float) -> Any:
    """One handler call on a handler thread; async handlers get their own loop there."""
    token = activate(ctx)
    try:
        if spec.is_async:
            # The activity's own deadline fires first; this one only stops the coroutine afterwards.
            return asyncio.run(asyncio.wait_for(spec.handler(str(ctx.job_id), ctx.data), timeout_s + 1))
        return spec.handler(str(ctx.job_id), ctx.data)
    finally:
        deactivate(token)
        close_old_connections()


def _policy(spec: RetrySpec) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=spec.max_attempts,
        backoff_coefficient=spec.backoff_coefficient,
        initial_interval_ms=spec.initial_interval_ms,
        max_interval_ms=spec.max_interval_ms,
        non_retryable_errors=tuple(spec.non_retryable_errors),
    )


class JobActivities:
    """The activity implementations, bound to the worker's thread pools."""

    def __init__(self, *, concurrency: int, worker_id: str) -> None:
        self.worker_id = worker_id
        #: Ids of the jobs whose attempts run here now (reported in the worker's heartbeat).
        self.running: set[str] = set()
        self._handler_threads = max(concurrency, 1)
        self._db_threads = max(concurrency, 1) + 1
        self._handlers = ThreadPoolExecutor(self._handler_threads, thread_name_prefix="jobscheduler-handler")
        self._db_pool = ThreadPoolExecutor(self._db_threads, thread_name_prefix="jobscheduler-db")

    def all(self) -> list[Callable[..., Any]]:
        return [self.create_scheduled_job, self.run_job, self.finalize_job, self.workflow_step_queued]

    def close(self) -> None:
        close_pool(self._handlers, self._handler_threads)
        close_pool(self._db_pool, self._db_threads)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync Django code `fn(*args)` on the DB pool."""
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, _with_connections, fn, *args)

    def _db_sync(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._db_pool.submit(_with_connections, lambda: fn(*args, **kwargs)).result()

    @activity.defn(name=ACTIVITY_CREATE)
    async def create_scheduled_job(self, req: CreateInput) -> None:
        info = activity.info()
        await self.db(records.create_scheduled_record, req, info.workflow_id, info.workflow_run_id)

    @activity.defn(name=ACTIVITY_FINALIZE)
    async def finalize_job(self, req: FinalizeInput) -> bool:
        return await self.db(records.finalize, req)

    @activity.defn(name=ACTIVITY_STEP_QUEUED)
    async def workflow_step_queued(self, req: StepQueuedInput) -> None:
        await self.db(records.step_queued, req)

    @activity.defn(name=ACTIVITY_RUN)
    async def run_job(self, req: AttemptInput) -> Any:
        info = activity.info()
        attempt = info.attempt
        begun = await self.db(records.begin_attempt, req.tenant, req.job_id, attempt, self.worker_id)
        if begun is None:
            return None  # cancelled before this attempt began, or the record is gone: nothing to run
        data, meta = begun
        with tracing.attempt_span(
            carrier=meta,
            queue=info.task_queue,
            job_type=req.job_name,
            job_id=req.job_id,
            attempt=attempt,
            backend=RunnerType.TEMPORAL,
        ) as span:
            outcome = _AttemptOutcome(req, attempt, span)
            return await self._run(req, info, attempt, data, outcome)

    async def _run(
        self, req: AttemptInput, info: Any, attempt: int, data: Any, outcome: _AttemptOutcome
    ) -> Any:
        metrics.observe_start(
            queue=info.task_queue,
            job_type=req.job_name,
            tenant=req.tenant,
            lag_seconds=(info.started_time - info.current_attempt_scheduled_time).total_seconds(),
        )
        try:
            spec = JobHandlerRegistry.get(req.job_name)
        except JobHandlerNotFound as exc:
            await self._end(outcome, outcome.failed(exc, retryable=False))
            raise outcome.error(exc, retryable=False) from None

        loop = asyncio.get_running_loop()
        workflow = activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
        progress: dict[str, Any] = {}

        def on_progress(pct: float, message: str | None) -> None:
            progress.update(progress=pct, message=message)
            asyncio.run_coroutine_threadsafe(_signal_quietly(workflow, progress.copy()), loop)

        ctx = TemporalJobContext(
            run_db=self._db_sync,
            on_progress=on_progress,
            job_id=outcome.job_uuid,
            tenant=outcome.tenant_uuid,
            job_name=req.job_name,
            attempt=attempt,
            data=data,
        )
        timeout_s = req.timeout_ms / 1000
        # In a copy of this context, so the handler's own spans are children of the attempt's span.
        in_context = functools.partial(contextvars.copy_context().run, _call_handler, spec, ctx, timeout_s)
        running = loop.run_in_executor(self._handlers, in_context)
        beat = asyncio.create_task(_heartbeat(progress, req.heartbeat_timeout_ms / 4000))
        self.running.add(req.job_id)
        try:
            return await self._finish(outcome, ctx, running, timeout_s)
        finally:
            self.running.discard(req.job_id)
            beat.cancel()

    async def _finish(
        self,
        outcome: _AttemptOutcome,
        ctx: TemporalJobContext,
        running: Future | asyncio.Future,
        timeout_s: float,
    ) -> Any:
        """Wait for the handler within its timeout and record how the attempt ended."""
        try:
            result = await asyncio.wait_for(asyncio.shield(running), timeout_s)
        except asyncio.CancelledError:
            return await self._cancelled(outcome, ctx, running)
        except Exception as exc:
            if running.done():
                return await self._failed(outcome, exc)
            ctx.mark_cancelled()  # our deadline passed while the handler still runs
            timeout = JobTimeout(f"Attempt exceeded its timeout of {outcome.req.timeout_ms} ms")
            return await self._failed(outcome, timeout)
        await self._end(outcome, outcome.completed(result))
        return _json_safe(result)

    async def _end(self, outcome: _AttemptOutcome, ended: tracking.AttemptOutcome) -> None:
        """Record how the attempt ended and, once the record took it, count it in this worker's metrics and
        mark the attempt's span."""
        failed = ended.outcome in (Outcome.FAILED, Outcome.RETRY)
        tracing.end_attempt(outcome.span, ended.outcome, ended.error if failed else None)
        if await self.db(records.end_attempt, ended):
            metrics.observe_end(
                queue=outcome.task_queue,
                job_type=outcome.req.job_name,
                tenant=outcome.req.tenant,
                outcome=ended.outcome,
                duration_seconds=time.monotonic() - outcome.started,
            )

    async def _failed(self, outcome: _AttemptOutcome, exc: BaseException) -> Any:
        retryable = outcome.policy.is_retryable(exc)
        await self._end(outcome, outcome.failed(exc, retryable=retryable))
        raise outcome.error(exc, retryable=retryable) from exc

    async def _cancelled(self, outcome: _AttemptOutcome, ctx: TemporalJobContext, running: Any) -> Any:
        """Temporal cancelled the attempt: tell the handler, give it a grace period, record what happened."""
        ctx.mark_cancelled()
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()  # the cancellation is handled here; later awaits must not re-raise it
        details = activity.cancellation_details()
        if details is not None and details.worker_shutdown:
            exc = WorkerShutdown("The worker shut down during the attempt")
            await self._end(outcome, outcome.failed(exc, retryable=True))
            raise asyncio.CancelledError()
        if details is None or not details.cancel_requested:
            # Temporal already gave up on this attempt (timed out / unknown): the next attempt records it.
            raise asyncio.CancelledError()
        try:
            result = await asyncio.wait_for(asyncio.shield(running), CANCEL_GRACE_SECONDS)
        except Exception as exc:
            await self._end(outcome, outcome.cancelled(str(exc)))
            raise asyncio.CancelledError() from None
        # The handler finished its work despite the request: the honest record is "completed".
        await self._end(outcome, outcome.completed(result))
        return _json_safe(result)


class _AttemptOutcome:
    """Builds the tracking Outcome (and the Temporal error) of one attempt."""

    def __init__(self, req: AttemptInput, attempt: int, span: Any = None) -> None:
        self.req = req
        #: The attempt's span (None without OpenTelemetry).
        self.span = span
        self.attempt = attempt
        self.tenant_uuid = uuid.UUID(req.tenant)
        self.job_uuid = uuid.UUID(req.job_id)
        self.policy = _policy(req.retry)
        self.task_queue = activity.info().task_queue
        #: time.monotonic() at the attempt's start, for its run time.
        self.started = time.monotonic()

    def _outcome(self, kind: str, **kw: Any) -> tracking.AttemptOutcome:
        return tracking.AttemptOutcome(
            tenant=self.tenant_uuid, job_id=self.job_uuid, attempt=self.attempt, outcome=kind, **kw
        )

    def completed(self, result: Any) -> tracking.AttemptOutcome:
        return self._outcome(Outcome.COMPLETED, result_json=json.dumps(_json_safe(result)))

    def cancelled(self, reason: str | None) -> tracking.AttemptOutcome:
        return self._outcome(Outcome.CANCELLED, error=reason)

    def failed(self, exc: BaseException, *, retryable: bool) -> tracking.AttemptOutcome:
        will_retry = retryable and self.attempt < self.policy.max_attempts
        return self._outcome(
            Outcome.RETRY if will_retry else Outcome.FAILED,
            error=str(exc) or type(exc).__name__,
            error_type=type(exc).__name__,
            traceback="".join(traceback.format_exception(exc)),
            next_at=records.next_attempt_at(self.req.retry.delay_ms(self.attempt)) if will_retry else None,
        )

    def error(self, exc: BaseException, *, retryable: bool) -> ApplicationError:
        """The failure Temporal sees: typed by the exception's class name, which the retry policy matches."""
        return ApplicationError(
            str(exc) or type(exc).__name__, type=type(exc).__name__, non_retryable=not retryable
        )


def _json_safe(value: Any) -> Any:
    """The handler's result as JSON data (the record and workflow history store JSON); str() for the rest."""
    return json.loads(json.dumps(value, default=str))


async def _heartbeat(progress: dict[str, Any], interval: float) -> None:
    """Heartbeat until cancelled: proves the worker is alive and is how Temporal delivers cancellation."""
    while True:
        activity.heartbeat(progress.copy())
        await asyncio.sleep(interval)


async def _signal_quietly(workflow: Any, update: dict[str, Any]) -> None:
    try:
        await workflow.signal(SIGNAL_PROGRESS, update)
    except Exception:
        logger.debug("progress signal to %s failed", workflow.id, exc_info=True)
