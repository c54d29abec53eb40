"""GenericJobWorkflow: one job, its handler attempts, and the record of them kept up to date whatever happens.

Workflow code is replayed, so it only keeps state and schedules activities; every side effect (the monitoring
record, the handler) happens in activities. Its state answers the `getJobState` query; `cancelJob` cancels the
job (the running handler sees `current_job().is_cancelled`; who asked and why are recorded), `updateProgress`
becomes the job's progress, in the query and in the record.

Two versions live here. A run whose input says `version` = CURRENT_VERSION (every start since that field) runs
the current one; an older input is decided by `workflow.patched(PATCH_RECORD_ON_ITS_OWN)`, so that histories
recorded by the first version still replay, and so do those of the current one recorded with the patch marker:

- the current one runs each attempt as an activity tried once (`run_attempt`) and keeps the retry loop itself:
  only the handler's own failures (and lost attempts) count as attempts. An attempt reports how it ended even
  when the database would not take it; the workflow then has the `record` activity write it, retried until the
  database answers, before it goes on. So the record catches up with everything Temporal knows, in order;
- the first one (`_run_first_version`) ran the handler activity under the handler's retry policy, its record
  writes inside it; kept for runs started before the change.

It runs outside the SDK's workflow sandbox (`sandboxed=False`): the sandbox imports the workflow's module afresh
for every run (compiling it from source where no bytecode cache is written) and proxies its imports, the
largest cost of a short job on the worker. The sandbox guards user-written workflow code; this is ours, takes
no user code (handlers run in activities), and its determinism is checked by replaying recorded histories
(tests/temporal/histories).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

with workflow.unsafe.imports_passed_through():
    from ..states import Outcome
    from .inputs import (
        ACTIVITY_ATTEMPT,
        ACTIVITY_CREATE,
        ACTIVITY_FINALIZE,
        ACTIVITY_RECORD,
        ACTIVITY_RUN,
        ATTEMPT_RETRY,
        BOOKKEEPING_RETRY,
        BOOKKEEPING_TIMEOUT,
        CURRENT_VERSION,
        MEMO_RECORD_BEHIND,
        PATCH_RECORD_ON_ITS_OWN,
        QUERY_STATE,
        RECORD_RETRY_MAX_INTERVAL,
        RECORD_UNAVAILABLE,
        SIGNAL_CANCEL,
        SIGNAL_PROGRESS,
        WORKFLOW_NAME,
        AttemptReport,
        CreateInput,
        FinalizeInput,
        JobInput,
        RecordInput,
        WorkflowStep,
        WriteKind,
    )

_SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

#: The first wait before an attempt whose start could not be recorded is tried again (doubling up to
#: RECORD_RETRY_MAX_INTERVAL): the database is away, no attempt is used up meanwhile.
RECORD_WAIT_INITIAL = timedelta(milliseconds=500)
#: The cancel reason of a Temporal cancellation request (not the `cancelJob` signal).
WORKFLOW_CANCEL_REASON = "Workflow cancellation requested"


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class GenericJobWorkflow:
    def __init__(self) -> None:
        self._step = WorkflowStep.INITIALIZING
        self._attempt_no = 0
        self._progress: float | None = None
        self._message: str | None = None
        self._error: str | None = None
        self._started_at: datetime | None = None
        self._completed_at: datetime | None = None
        self._cancel: dict[str, Any] | None = None
        self._attempt: workflow.ActivityHandle | None = None
        #: Progress from `updateProgress` signals not yet written to the record (current version only).
        self._progress_to_record: dict[str, Any] | None = None
        self._records_signals = False
        self._record_behind = False

    @workflow.run
    async def run(self, job: JobInput) -> dict[str, Any]:
        if job.version < CURRENT_VERSION and not workflow.patched(PATCH_RECORD_ON_ITS_OWN):
            return await self._run_first_version(job)
        self._records_signals = True
        job_id = job.job_id or await self._create_record(job, BOOKKEEPING_RETRY)
        recorder = asyncio.create_task(self._record_progress_signals(job, job_id))
        try:
            return await self._attempts(job, job_id)
        except asyncio.CancelledError:
            # A Temporal cancel request (not the signal): record the job cancelled, then end as cancelled.
            self._cancel = self._cancel or {"reason": WORKFLOW_CANCEL_REASON}
            await self._record(RecordInput(job_id, job.tenant, attempt=self._attempt_no, cancel=self._cancel,
                                           end={"outcome": Outcome.CANCELLED}))  # fmt: skip
            raise
        finally:
            recorder.cancel()

    # -- the current version ------------------------------------------------------------------------------------

    async def _attempts(self, job: JobInput, job_id: str) -> dict[str, Any]:
        attempt = 1
        record_wait = RECORD_WAIT_INITIAL
        while True:
            if self._cancel is not None:
                # Cancelled before the first attempt or between two: no attempt runs to see it.
                await self._record(RecordInput(job_id, job.tenant, cancel=self._cancel))
                return self._finish(
                    WorkflowStep.CANCELLED, {"jobId": job_id, "reason": self._cancel_reason()}
                )
            self._step = WorkflowStep.EXECUTING
            self._attempt_no = attempt
            self._started_at = self._started_at or workflow.now()
            report = await self._run_attempt(job, job_id, attempt)
            if report is None:  # the start could not be recorded: not an attempt; wait for the database
                # (the record is not behind: it says `queued`, and no handler runs)
                await self._sleep_unless_cancelled(record_wait)
                record_wait = min(record_wait * 2, RECORD_RETRY_MAX_INTERVAL)
                continue
            record_wait = RECORD_WAIT_INITIAL
            if report.outcome is None:  # the record had ended before the attempt began (cancelled meanwhile)
                return self._finish(WorkflowStep.CANCELLED, {"jobId": job_id})
            await self._catch_up(job, job_id, attempt, report)
            if report.outcome == Outcome.RETRY:
                self._error = report.error
                await self._sleep_unless_cancelled(timedelta(milliseconds=job.retry.delay_ms(attempt)))
                attempt += 1
                continue
            if report.outcome == Outcome.COMPLETED:
                self._progress = 100.0
                return self._finish(WorkflowStep.COMPLETED, {"jobId": job_id, "result": report.result})
            if report.outcome == Outcome.CANCELLED:
                return self._finish(
                    WorkflowStep.CANCELLED, {"jobId": job_id, "reason": self._cancel_reason()}
                )
            self._error = report.error
            return self._finish(WorkflowStep.FAILED, {"jobId": job_id, "error": report.error})

    async def _run_attempt(self, job: JobInput, job_id: str, attempt: int) -> AttemptReport | None:
        """Run one attempt; its report, or None when it could not start because the record was unreachable."""
        self._attempt = workflow.start_activity(
            ACTIVITY_ATTEMPT,
            job.attempt_input(job_id, attempt),
            start_to_close_timeout=job.start_to_close(),
            heartbeat_timeout=timedelta(milliseconds=job.heartbeat_timeout_ms),
            retry_policy=ATTEMPT_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            result_type=AttemptReport,
        )
        try:
            return await self._attempt
        except ActivityError as err:
            return self._report_of(job, attempt, err)
        finally:
            self._attempt = None

    def _report_of(self, job: JobInput, attempt: int, err: ActivityError) -> AttemptReport | None:
        """What an attempt that did not complete tells: its own report, or what Temporal knows of it."""
        cause = err.cause
        if isinstance(cause, ApplicationError):
            if cause.type == RECORD_UNAVAILABLE:
                return None
            details = cause.details[0] if cause.details else None
            if isinstance(details, dict) and "outcome" in details:
                return AttemptReport(**details)
        if isinstance(cause, CancelledError) or self._cancel is not None:
            # No signal: a Temporal cancellation request reached the attempt.
            self._cancel = self._cancel or {"reason": WORKFLOW_CANCEL_REASON}
            return AttemptReport(outcome=Outcome.CANCELLED, recorded=False)
        # The attempt ended without a report: its worker died, Temporal timed it out, or the activity broke. Only
        # the workflow knows; its record of it is not late (no `ended_at`: recorded as of now).
        if isinstance(cause, TemporalTimeoutError):
            kind = cause.type.name.lower().replace("_", "-") if cause.type else "unknown"
            error = f"AttemptLost: Attempt {attempt} was lost ({kind} timeout): its worker stopped or it timed out"
            error_type = "AttemptLost"
        else:
            error_type = cause.type if isinstance(cause, ApplicationError) and cause.type else "AttemptLost"
            error = f"{error_type}: {cause or err}"
        will_retry = attempt < job.retry.max_attempts
        next_at = workflow.now() + timedelta(milliseconds=job.retry.delay_ms(attempt)) if will_retry else None
        return AttemptReport(
            outcome=Outcome.RETRY if will_retry else Outcome.FAILED,
            error=error,
            error_type=error_type,
            next_at=next_at.isoformat() if next_at else None,
            recorded=False,
        )

    async def _catch_up(self, job: JobInput, job_id: str, attempt: int, report: AttemptReport) -> None:
        """Have the record take what this attempt could not write (or what only the workflow knows: who
        cancelled, a lost attempt), before anything else happens to the job."""
        end = {
            "outcome": report.outcome,
            "result": report.result,
            "error": report.error,
            "error_type": report.error_type,
            "traceback": report.traceback,
            "next_at": report.next_at,
            "ended_at": report.ended_at,
        }
        if report.outcome == Outcome.CANCELLED:
            cancel = self._cancel or {"reason": report.error}
            await self._record(RecordInput(job_id, job.tenant, attempt, report.writes, cancel, end))
            return
        if report.recorded:
            return
        behind = report.ended_at is not None  # the attempt's own end, which the database did not take
        if behind:
            self._set_record_behind(True)
        await self._record(
            RecordInput(
                job_id, job.tenant, attempt, report.writes, None, end, report.ended_at if behind else None
            )
        )
        self._set_record_behind(False)

    async def _record(self, req: RecordInput) -> None:
        await workflow.execute_activity(
            ACTIVITY_RECORD,
            req,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=BOOKKEEPING_RETRY,
            cancellation_type=workflow.ActivityCancellationType.ABANDON,
        )

    async def _record_progress_signals(self, job: JobInput, job_id: str) -> None:
        """Write `updateProgress` signals to the record, one at a time, the latest first (older are moot)."""
        while True:
            await workflow.wait_condition(lambda: self._progress_to_record is not None)
            update, self._progress_to_record = self._progress_to_record, None
            write = {"kind": WriteKind.PROGRESS, **(update or {})}
            await self._record(RecordInput(job_id, job.tenant, writes=[write]))

    async def _sleep_unless_cancelled(self, delay: timedelta) -> None:
        try:
            await workflow.wait_condition(lambda: self._cancel is not None, timeout=delay)
        except TimeoutError:
            return

    def _set_record_behind(self, behind: bool) -> None:
        """Say in the run's memo (which `describe` shows without a worker) that the record is behind."""
        if behind != self._record_behind:
            self._record_behind = behind
            workflow.upsert_memo({MEMO_RECORD_BEHIND: True if behind else None})

    def _cancel_reason(self) -> str | None:
        return (self._cancel or {}).get("reason")

    async def _create_record(self, job: JobInput, retry_policy: Any = None) -> str:
        """A run started by a Temporal Schedule has no `jobs` row yet: make one (idempotent on retry)."""
        job_id = str(workflow.uuid4())
        scheduled = workflow.info().typed_search_attributes.get(_SCHEDULED_START) or workflow.now()
        await workflow.execute_activity(
            ACTIVITY_CREATE,
            CreateInput(
                job_id=job_id,
                tenant=job.tenant,
                job_name=job.job_name,
                user_id=job.user_id,
                data=job.data or {},
                metadata=job.metadata,
                schedule_id=job.schedule_id,
                max_attempts=job.retry.max_attempts,
                scheduled_at=scheduled.isoformat(),
                timeout_ms=job.timeout_ms if retry_policy is not None else None,
                queue=job.queue,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=retry_policy,
        )
        return job_id

    # -- the first version, for histories recorded before PATCH_RECORD_ON_ITS_OWN -------------------------------

    async def _run_first_version(self, job: JobInput) -> dict[str, Any]:
        job_id = job.job_id or await self._create_record(job)
        if self._cancel is None:
            self._step = WorkflowStep.EXECUTING
            self._started_at = workflow.now()
            self._attempt = workflow.start_activity(
                ACTIVITY_RUN,
                job.attempt_input(job_id),
                start_to_close_timeout=job.start_to_close(),
                heartbeat_timeout=timedelta(milliseconds=job.heartbeat_timeout_ms),
                retry_policy=job.retry.to_temporal(),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            try:
                result = await self._attempt
            except ActivityError as err:
                return await self._first_version_failed(job, job_id, err)
            except asyncio.CancelledError:
                self._cancel = self._cancel or {"reason": WORKFLOW_CANCEL_REASON}
                await self._finalize(job, job_id, Outcome.CANCELLED, self._cancel.get("reason"), None)
                raise
            self._progress = 100.0
            return self._finish(WorkflowStep.COMPLETED, {"jobId": job_id, "result": result})
        await self._finalize(job, job_id, Outcome.CANCELLED, self._cancel.get("reason"), None)
        return self._finish(WorkflowStep.CANCELLED, {"jobId": job_id})

    async def _first_version_failed(self, job: JobInput, job_id: str, err: ActivityError) -> dict[str, Any]:
        cause = err.cause
        if self._cancel is not None or isinstance(cause, CancelledError):
            reason = (self._cancel or {}).get("reason") or "Cancelled"
            await self._finalize(job, job_id, Outcome.CANCELLED, reason, None)
            return self._finish(WorkflowStep.CANCELLED, {"jobId": job_id, "reason": reason})
        self._error = str(cause or err)
        error_type = cause.type if isinstance(cause, ApplicationError) else type(cause or err).__name__
        if isinstance(cause, TemporalTimeoutError):
            error_type = f"ActivityTimeout.{cause.type.name}" if cause.type else "ActivityTimeout"
            self._error = f"The attempt was lost ({error_type}): the worker stopped or timed out"
        # The attempt usually recorded its own failure; this records it only when nobody did.
        await self._finalize(job, job_id, Outcome.FAILED, self._error, error_type)
        return self._finish(WorkflowStep.FAILED, {"jobId": job_id, "error": self._error})

    async def _finalize(
        self, job: JobInput, job_id: str, outcome: str, error: str | None, error_type: str | None
    ) -> None:
        await workflow.execute_activity(
            ACTIVITY_FINALIZE,
            FinalizeInput(
                job_id=job_id, tenant=job.tenant, outcome=outcome, error=error, error_type=error_type
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            cancellation_type=workflow.ActivityCancellationType.ABANDON,
        )

    # -- both versions ------------------------------------------------------------------------------------------

    def _finish(self, step: WorkflowStep, result: dict[str, Any]) -> dict[str, Any]:
        self._step = step
        self._completed_at = workflow.now()
        return {"status": str(step), **result}

    @workflow.signal(name=SIGNAL_CANCEL)
    def cancel_job(self, request: dict[str, Any]) -> None:
        if self._cancel is not None or self._completed_at is not None:
            return
        request = dict(request or {})
        self._cancel = {"reason": request.get("reason") or None, "cancelledBy": request.get("cancelledBy")}
        self._step = WorkflowStep.CANCELLING
        if self._attempt is not None and not self._attempt.done():
            self._attempt.cancel()

    @workflow.signal(name=SIGNAL_PROGRESS)
    def update_progress(self, update: dict[str, Any]) -> None:
        update = update or {}
        progress = update.get("progress")
        if isinstance(progress, int | float) and not isinstance(progress, bool) and 0 <= progress <= 100:
            self._progress = float(progress)
        else:
            progress = None
        message = update.get("message", self._message)
        self._message = None if message is None else str(message)
        # The handler's own progress reaches the record through its attempt; another sender's is written here.
        if self._records_signals and update.get("recordedBy") != "handler" and self._completed_at is None:
            self._progress_to_record = {"progress": self._progress, "message": self._message}

    @workflow.query(name=QUERY_STATE)
    def get_job_state(self) -> dict[str, Any]:
        return {
            "step": str(self._step),
            "progress": self._progress,
            "message": self._message,
            "error": self._error,
            "attempt": self._attempt_no,
            "recordBehind": self._record_behind,
            "startedAt": self._started_at.isoformat() if self._started_at else None,
            "completedAt": self._completed_at.isoformat() if self._completed_at else None,
        }
