"""The activities of GenericJobWorkflow: run a handler attempt, create a scheduled run's record, bookkeeping.

Activities are `async def` on the worker's event loop (so they can heartbeat and receive cancellation), but
nothing Django runs on that loop: handlers run on a handler thread pool, and every monitoring-record write
runs on a small DB thread pool through `records` (which writes only via `tracking`). Both pools close their
database connections when the worker stops.

A database that does not answer never costs a handler attempt. An attempt whose start cannot be recorded does
not run the handler: it tells the workflow (`RecordUnavailable`), which tries it again later under the same
number. Once the handler runs, its steps and progress are written as they come when the database answers and
kept when it does not (`RecordBuffer`); the attempt then tells the workflow how it ended in an `AttemptReport`,
with whatever the record has not got yet, and the workflow has the `record` activity write it, retried until
the database is back. The first workflow version's `run_job` activity is kept for workflows started before.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, close_old_connections, connections
from django.utils import timezone
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from .. import outcomes, tracking
from ..context import JobContext, activate, deactivate
from ..exceptions import JobCancelled, JobHandlerNotFound, JobTimeout
from ..ids import new_id
from ..queues import DEFAULT_QUEUE
from ..registry import HandlerSpec, JobHandlerRegistry, RetryPolicy
from ..states import Outcome, RunnerType
from ..telemetry import metrics, tracing
from . import records
from .inputs import (
    ACTIVITY_ATTEMPT,
    ACTIVITY_CREATE,
    ACTIVITY_FINALIZE,
    ACTIVITY_RECORD,
    ACTIVITY_RUN,
    ACTIVITY_STEP_QUEUED,
    RECORD_UNAVAILABLE,
    SIGNAL_PROGRESS,
    AttemptInput,
    AttemptReport,
    CreateInput,
    FinalizeInput,
    RecordInput,
    RetrySpec,
    StepQueuedInput,
    WriteKind,
)

logger = logging.getLogger("jobscheduler.temporal")

T = TypeVar("T")

#: Seconds a cancelled handler gets to notice `is_cancelled` and stop before the attempt is recorded cancelled.
CANCEL_GRACE_SECONDS = 10.0
#: Seconds an attempt waits for the database to record its start (else the workflow tries the attempt again
#: later) or its end (else it hands the end to the workflow, which records it).
RECORD_TIMEOUT_SECONDS = 5.0
#: The unwritten steps one attempt keeps while the database is away (further ones are dropped, with a warning):
#: they travel in workflow history, which bounds the size of a payload.
MAX_PENDING_STEPS = 500
#: Errors that mean the database is not reachable (as opposed to a statement that is wrong).
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)


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


class RecordBuffer:
    """The handler's own record writes of one attempt (`step()` and `progress()`), in the order they happened.

    Each write is made at once when the database answers, so a handler's step shows while it runs. When the
    database does not answer, the handler carries on (a record write is never the handler's failure) and the
    writes wait, trying again at most every few seconds: the attempt's end writes them first, or hands them to
    the workflow with the end. Only the latest progress is kept; a step carries the id and time it got when it
    happened, so writing it twice records it once, at the right place in the timeline.
    """

    def __init__(self, write: Callable[[list[dict[str, Any]]], None], job_id: str) -> None:
        self._write = write
        self._job_id = job_id
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._closed = False
        self._retry_at = 0.0
        self._delay = 0.5
        self._dropped = 0

    def add(self, write: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return  # a handler that outlived its attempt: the attempt's record is settled
            if write["kind"] == WriteKind.PROGRESS:
                self._pending = [w for w in self._pending if w["kind"] != WriteKind.PROGRESS]
            elif sum(w["kind"] == WriteKind.STEP for w in self._pending) >= MAX_PENDING_STEPS:
                self._dropped += 1
                logger.warning(
                    "Job %s: step %r not recorded: %d steps already wait for the database",
                    self._job_id,
                    write.get("name"),
                    MAX_PENDING_STEPS,
                )
                return
            self._pending.append(write)
            if time.monotonic() >= self._retry_at:
                self._flush_locked()

    def _flush_locked(self) -> None:
        batch = list(self._pending)
        try:
            self._write(batch)
        except (*DATABASE_UNREACHABLE, TimeoutError) as exc:
            self._retry_at = time.monotonic() + self._delay
            self._delay = min(self._delay * 2, 5.0)
            logger.warning(
                "Job %s: %d record write(s) wait for the database (%s)", self._job_id, len(batch), exc
            )
            return
        del self._pending[: len(batch)]
        self._retry_at, self._delay = 0.0, 0.5

    def close(self) -> list[dict[str, Any]]:
        """No more writes (the attempt ended): what is still unwritten, for the attempt's end."""
        with self._lock:
            self._closed = True
            return list(self._pending)


class TemporalJobContext(JobContext):
    """`current_job()` inside a Temporal attempt: progress and steps go to the record through the attempt's
    RecordBuffer (and progress to the workflow's queryable state); `is_cancelled` turns true when the workflow
    cancels the attempt."""

    def __init__(self, *, buffer: RecordBuffer, on_progress: Callable[[float, str | None], None], **kw):
        super().__init__(**kw)
        self._buffer = buffer
        self._on_progress = on_progress

    def _save_progress(self, pct: float, message: str | None) -> None:
        self._buffer.add({"kind": WriteKind.PROGRESS, "progress": pct, "message": message})
        self._on_progress(pct, message)

    def _save_step(self, name: str, status: str, result_json: str | None) -> None:
        self._buffer.add(
            {
                "kind": WriteKind.STEP,
                "detailId": str(new_id()),
                "name": name,
                "status": status,
                "result": result_json,
                "at": timezone.now().isoformat(),
            }
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


class _Attempt:
    """One attempt in the making: its number, how it is reported, and its tracking outcome once it ended."""

    def __init__(self, req: AttemptInput, number: int, *, reports: bool) -> None:
        self.req = req
        self.number = number
        #: True for `run_attempt` (ends are reported to the workflow), False for the first version's `run_job`.
        self.reports = reports
        self.tenant = uuid.UUID(req.tenant)
        self.job_id = uuid.UUID(req.job_id)
        self.policy = _policy(req.retry)
        self.result: Any = None
        #: time.monotonic() at the attempt's start, for its run time.
        self.started = time.monotonic()
        #: The job's queue as recorded (the metrics' `queue` label), known once the attempt began.
        self.queue = DEFAULT_QUEUE

    def completed(self, result: Any) -> tracking.AttemptOutcome:
        self.result = outcomes.result_value(result)
        return outcomes.completed(self.tenant, self.job_id, self.number, result)

    def cancelled(self, reason: str | None = None) -> tracking.AttemptOutcome:
        return outcomes.cancelled(self.tenant, self.job_id, self.number, reason)

    def failed(
        self, exc: BaseException, *, retryable: bool, with_traceback: bool = True
    ) -> tracking.AttemptOutcome:
        will_retry = retryable and self.number < self.policy.max_attempts
        delay_ms = self.req.retry.delay_ms(self.number)
        return outcomes.failed(
            self.tenant,
            self.job_id,
            self.number,
            exc,
            will_retry=will_retry,
            with_traceback=with_traceback,
            next_at=records.next_attempt_at(delay_ms) if will_retry else None,
        )

    def report(
        self, end: tracking.AttemptOutcome, *, recorded: bool, writes: list[dict[str, Any]]
    ) -> AttemptReport:
        return AttemptReport(
            outcome=str(end.outcome),
            result=self.result,
            error=end.error,
            error_type=end.error_type,
            traceback=end.traceback,
            next_at=end.next_at.isoformat() if end.next_at else None,
            ended_at=timezone.now().isoformat(),
            recorded=recorded,
            writes=writes,
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
        return [
            self.create_scheduled_job,
            self.run_job,
            self.run_attempt,
            self.finalize_job,
            self.record,
            self.workflow_step_queued,
        ]

    def close(self) -> None:
        close_pool(self._handlers, self._handler_threads)
        close_pool(self._db_pool, self._db_threads)

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run sync Django code `fn(*args)` on the DB pool."""
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, _with_connections, fn, *args)

    def _db_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` on the DB pool from a handler thread, waiting at most RECORD_TIMEOUT_SECONDS (a
        database that hangs must not hold the handler: TimeoutError, and its RecordBuffer keeps the writes)."""
        return self._db_pool.submit(_with_connections, fn, *args).result(timeout=RECORD_TIMEOUT_SECONDS)

    @activity.defn(name=ACTIVITY_CREATE)
    async def create_scheduled_job(self, req: CreateInput) -> None:
        info = activity.info()
        await self._bookkeeping(records.create_scheduled_record, req, info.workflow_id, info.workflow_run_id)

    @activity.defn(name=ACTIVITY_FINALIZE)
    async def finalize_job(self, req: FinalizeInput) -> bool:
        return await self._bookkeeping(records.finalize, req)

    @activity.defn(name=ACTIVITY_RECORD)
    async def record(self, req: RecordInput) -> bool:
        """Bookkeeping for the workflow; it fails while the database is away, and Temporal tries it again."""
        return await self._bookkeeping(records.catch_up, req)

    @activity.defn(name=ACTIVITY_STEP_QUEUED)
    async def workflow_step_queued(self, req: StepQueuedInput) -> None:
        await self._bookkeeping(records.step_queued, req)

    async def _bookkeeping(self, fn: Callable[..., T], *args: Any) -> T:
        """A record write for the workflow. While the database is away the failure is expected and retried by
        Temporal: one line in the log (its `attempt` says how long), not a traceback per try."""
        try:
            return await self.db(fn, *args)
        except DATABASE_UNREACHABLE as exc:
            info = activity.info()
            logger.warning(
                "Bookkeeping for %s (try %d) waits for the database: %s",
                info.workflow_id,
                info.attempt,
                exc,
                extra={"action": "record_unavailable", "workflow_id": info.workflow_id},
            )
            raise ApplicationError(
                f"The record is unreachable: {exc}",
                type=RECORD_UNAVAILABLE,
                category=ApplicationErrorCategory.BENIGN,
            ) from None

    @activity.defn(name=ACTIVITY_RUN)
    async def run_job(self, req: AttemptInput) -> Any:
        """An attempt of a first-version workflow: Temporal's attempt number, every record write must succeed."""
        return await self._run(_Attempt(req, activity.info().attempt, reports=False))

    @activity.defn(name=ACTIVITY_ATTEMPT)
    async def run_attempt(self, req: AttemptInput) -> AttemptReport:
        """Attempt `req.attempt`: a completed one returns its report, any other end raises it (in the error's
        details), so Temporal shows failures as failures; the workflow reads the report either way."""
        return await self._run(_Attempt(req, req.attempt, reports=True))

    async def _run(self, attempt: _Attempt) -> Any:
        req = attempt.req
        progress: dict[str, Any] = {}
        # The heartbeat task runs from the first moment: a record write that is slow while the database goes away
        # must not look like a dead worker to Temporal (which would count the attempt as lost).
        beat = asyncio.create_task(_heartbeat(progress, req.heartbeat_timeout_ms / 4000))
        self.running.add(req.job_id)
        try:
            begun = await self._begin(attempt)
            if begun is None:  # cancelled before this attempt began, or the record is gone: nothing to run
                return AttemptReport(outcome=None) if attempt.reports else None
            data, meta = begun
            attempt.queue = meta.get("queue") or DEFAULT_QUEUE
            info = activity.info()
            with tracing.attempt_span(
                carrier=meta,
                queue=info.task_queue,
                job_type=req.job_name,
                job_id=req.job_id,
                attempt=attempt.number,
                backend=RunnerType.TEMPORAL,
            ) as span:
                metrics.observe_start(
                    queue=attempt.queue,
                    job_type=req.job_name,
                    tenant=req.tenant,
                    lag_seconds=(info.started_time - info.current_attempt_scheduled_time).total_seconds(),
                )
                buffer = RecordBuffer(
                    lambda writes: self._db_sync(
                        records.write_now, attempt.tenant, attempt.job_id, attempt.number, writes
                    ),
                    req.job_id,
                )
                spec = JobHandlerRegistry.find(req.job_name)
                if spec is None:
                    error = JobHandlerNotFound(req.job_name)
                    end = attempt.failed(error, retryable=False, with_traceback=False)
                else:
                    end = await self._call(attempt, spec, buffer, data, progress)
                failed = end.outcome in (Outcome.FAILED, Outcome.RETRY)
                tracing.end_attempt(span, end.outcome, end.error if failed else None)
                return await self._settle(attempt, buffer, end)
        finally:
            self.running.discard(req.job_id)
            beat.cancel()

    async def _begin(self, attempt: _Attempt) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Record the attempt's start; the handler never runs unrecorded. `run_attempt`: a database that does not
        answer in time fails the attempt as RecordUnavailable, which the workflow does not count as an attempt."""
        req = attempt.req
        begin = self.db(records.begin_attempt, req.tenant, req.job_id, attempt.number, self.worker_id)
        if not attempt.reports:
            return await begin
        try:
            return await asyncio.wait_for(begin, RECORD_TIMEOUT_SECONDS)
        except (*DATABASE_UNREACHABLE, TimeoutError) as exc:
            logger.warning(
                "Job %s attempt %d waits for the database: its start could not be recorded (%s)",
                req.job_id,
                attempt.number,
                exc or type(exc).__name__,
                extra={"action": "record_unavailable", "job_id": req.job_id},
            )
            raise ApplicationError(
                f"The start of attempt {attempt.number} could not be recorded (the handler did not run): {exc}",
                type=RECORD_UNAVAILABLE,
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            ) from None

    async def _call(
        self, attempt: _Attempt, spec: HandlerSpec, buffer: RecordBuffer, data: dict[str, Any], progress: dict
    ) -> tracking.AttemptOutcome:
        """Run the handler on a handler thread; how the attempt ended."""
        req = attempt.req
        loop = asyncio.get_running_loop()
        info = activity.info()
        workflow = activity.client().get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)

        def on_progress(pct: float, message: str | None) -> None:
            progress.update(progress=pct, message=message)
            asyncio.run_coroutine_threadsafe(_signal_quietly(workflow, progress.copy()), loop)

        ctx = TemporalJobContext(
            buffer=buffer,
            on_progress=on_progress,
            job_id=attempt.job_id,
            tenant=attempt.tenant,
            job_name=req.job_name,
            attempt=attempt.number,
            data=data,
        )
        timeout_s = req.timeout_ms / 1000
        # In a copy of this context, so the handler's own spans are children of the attempt's span.
        in_context = functools.partial(contextvars.copy_context().run, _call_handler, spec, ctx, timeout_s)
        running = loop.run_in_executor(self._handlers, in_context)
        return await self._wait_for_handler(attempt, ctx, running, timeout_s)

    async def _wait_for_handler(
        self, attempt: _Attempt, ctx: TemporalJobContext, running: Future | asyncio.Future, timeout_s: float
    ) -> tracking.AttemptOutcome:
        """Wait for the handler within its timeout; how the attempt ended."""
        try:
            result = await asyncio.wait_for(asyncio.shield(running), timeout_s)
        except asyncio.CancelledError:
            return await self._cancelled(attempt, ctx, running)
        # A handler's SystemExit or KeyboardInterrupt fails the job, not the worker.
        except BaseException as exc:
            if not running.done():
                ctx.mark_cancelled()  # our deadline passed while the handler still runs
                timeout = JobTimeout(outcomes.timeout_message(attempt.req.timeout_ms))
                return attempt.failed(timeout, retryable=attempt.policy.is_retryable(timeout))
            if isinstance(exc, JobCancelled):
                return attempt.cancelled(str(exc))
            return attempt.failed(exc, retryable=attempt.policy.is_retryable(exc))
        return attempt.completed(result)

    async def _cancelled(
        self, attempt: _Attempt, ctx: TemporalJobContext, running: Any
    ) -> tracking.AttemptOutcome:
        """Temporal cancelled the attempt: tell the handler, give it a grace period; the attempt ends cancelled
        however the handler ends (as on pgboss: a handler that honours `is_cancelled` and returns normally was
        still cancelled)."""
        ctx.mark_cancelled()
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()  # the cancellation is handled here; later awaits must not re-raise it
        details = activity.cancellation_details()
        if details is not None and details.worker_shutdown:
            return attempt.failed(WorkerShutdown("The worker shut down during the attempt"), retryable=True)
        if details is None or not details.cancel_requested:
            # Temporal already gave up on this attempt (timed out / unknown): the workflow records it.
            raise asyncio.CancelledError()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(running), CANCEL_GRACE_SECONDS)
        return attempt.cancelled()

    async def _settle(self, attempt: _Attempt, buffer: RecordBuffer, end: tracking.AttemptOutcome) -> Any:
        """Record the attempt's end (its unwritten steps first) and tell Temporal how it ended.

        `run_attempt`: a cancelled end is left to the workflow, which knows who cancelled and why; an end the
        database does not take within RECORD_TIMEOUT_SECONDS travels in the report, and the workflow
        records it. `run_job` (first version): the writes must succeed, else the activity fails as it did.
        """
        writes = buffer.close()
        cancelled = end.outcome == Outcome.CANCELLED
        recorded = True
        if attempt.reports:
            settle = self.db(
                records.settle_attempt,
                attempt.tenant,
                attempt.job_id,
                attempt.number,
                writes,
                None if cancelled else end,
            )
            try:
                took_end = await _despite_cancel(settle, RECORD_TIMEOUT_SECONDS)
                writes = []
                if took_end or cancelled:  # a cancelled end goes to the record through the workflow at once
                    self._count(attempt, end)
            except (*DATABASE_UNREACHABLE, TimeoutError) as exc:
                logger.warning(
                    "Job %s attempt %d ended %s; the record is unreachable (%s): the workflow records it",
                    attempt.req.job_id,
                    attempt.number,
                    end.outcome,
                    exc,
                    extra={"action": "record_behind", "job_id": attempt.req.job_id},
                )
                recorded = False
            report = attempt.report(end, recorded=recorded and not cancelled, writes=writes)
            if end.outcome == Outcome.COMPLETED:
                return report
            raise ApplicationError(
                end.error or str(end.outcome),
                report,
                type=end.error_type or JobCancelled.__name__,
                non_retryable=True,
            )
        if await self.db(records.settle_attempt, attempt.tenant, attempt.job_id, attempt.number, writes, end):
            self._count(attempt, end)
        if cancelled:
            raise asyncio.CancelledError()
        if end.outcome == Outcome.COMPLETED:
            return attempt.result
        raise ApplicationError(
            end.error or "", type=end.error_type, non_retryable=end.outcome != Outcome.RETRY
        )

    def _count(self, attempt: _Attempt, end: tracking.AttemptOutcome) -> None:
        """Count a recorded end in this worker's metrics (an end the workflow records after a database outage
        is not counted: it is recorded elsewhere, later)."""
        metrics.observe_end(
            queue=attempt.queue,
            job_type=attempt.req.job_name,
            tenant=attempt.req.tenant,
            outcome=end.outcome,
            duration_seconds=time.monotonic() - attempt.started,
        )


async def _despite_cancel(work: Awaitable[T], timeout: float) -> T:
    """Await `work` (at most `timeout` seconds) even if Temporal cancels the attempt meanwhile: the handler has
    ended, and how it ended is what a cancel would want recorded too."""
    task = asyncio.ensure_future(asyncio.wait_for(work, timeout))
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if task.done():
                return task.result()


async def _heartbeat(progress: dict[str, Any], interval: float) -> None:
    """Heartbeat until cancelled: proves the worker is alive and is how Temporal delivers cancellation.

    The first beat comes after one interval (a quarter of the heartbeat timeout), not at once: the SDK sends a
    first heartbeat to the server immediately (later ones it throttles), which would be one more RPC and one
    more server write for every job, however short; a job done within the interval needs none.
    """
    while True:
        await asyncio.sleep(interval)
        activity.heartbeat(progress.copy())


async def _signal_quietly(workflow: Any, update: dict[str, Any]) -> None:
    """The handler's progress for the workflow's `getJobState` (marked as already recorded by the attempt)."""
    try:
        await workflow.signal(SIGNAL_PROGRESS, {**update, "recordedBy": "handler"})
    except Exception:
        logger.debug("progress signal to %s failed", workflow.id, exc_info=True)
