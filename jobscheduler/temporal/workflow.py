"""GenericJobWorkflow: one job, run as one activity with the handler's retry policy and timeout.

Workflow code is replayed, so it only keeps state and schedules activities; every side effect (the monitoring
record, the handler) happens in activities. Its state answers the `getJobState` query; `cancelJob` cancels the
running attempt (the handler sees `current_job().is_cancelled`), `updateProgress` updates the queried progress.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from .inputs import (
        ACTIVITY_CREATE,
        ACTIVITY_FINALIZE,
        ACTIVITY_RUN,
        BOOKKEEPING_TIMEOUT,
        QUERY_STATE,
        SIGNAL_CANCEL,
        SIGNAL_PROGRESS,
        WORKFLOW_NAME,
        AttemptInput,
        CreateInput,
        FinalizeInput,
        JobInput,
    )

_SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=WORKFLOW_NAME)
class GenericJobWorkflow:
    def __init__(self) -> None:
        self._step = "queued"
        self._progress: float | None = None
        self._message: str | None = None
        self._error: str | None = None
        self._started_at: datetime | None = None
        self._completed_at: datetime | None = None
        self._cancel: dict[str, Any] | None = None
        self._attempt: workflow.ActivityHandle | None = None

    @workflow.run
    async def run(self, job: JobInput) -> dict[str, Any]:
        job_id = job.job_id or await self._create_record(job)
        if self._cancel is None:
            self._step = "running"
            self._started_at = workflow.now()
            self._attempt = workflow.start_activity(
                ACTIVITY_RUN,
                AttemptInput(
                    job_id=job_id,
                    tenant=job.tenant,
                    job_name=job.job_name,
                    retry=job.retry,
                    timeout_ms=job.timeout_ms,
                    heartbeat_timeout_ms=job.heartbeat_timeout_ms,
                ),
                start_to_close_timeout=job.start_to_close(),
                heartbeat_timeout=timedelta(milliseconds=job.heartbeat_timeout_ms),
                retry_policy=job.retry.to_temporal(),
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
            try:
                result = await self._attempt
            except ActivityError as err:
                return await self._attempt_failed(job, job_id, err)
            except asyncio.CancelledError:
                # A Temporal cancel request (not the signal): finish the record, then end as cancelled.
                self._cancel = self._cancel or {"reason": "Workflow cancellation requested"}
                await self._finalize(job, job_id, "cancelled", self._cancel.get("reason"), None)
                raise
            self._progress = 100.0
            return self._finish("completed", {"jobId": job_id, "result": result})
        await self._finalize(job, job_id, "cancelled", self._cancel.get("reason"), None)
        return self._finish("cancelled", {"jobId": job_id})

    async def _create_record(self, job: JobInput) -> str:
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
                queue=job.queue,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
        )
        return job_id

    async def _attempt_failed(self, job: JobInput, job_id: str, err: ActivityError) -> dict[str, Any]:
        cause = err.cause
        if self._cancel is not None or isinstance(cause, CancelledError):
            reason = (self._cancel or {}).get("reason") or "Cancelled"
            await self._finalize(job, job_id, "cancelled", reason, None)
            return self._finish("cancelled", {"jobId": job_id, "reason": reason})
        self._error = str(cause or err)
        error_type = cause.type if isinstance(cause, ApplicationError) else type(cause or err).__name__
        if isinstance(cause, TimeoutError):
            error_type = f"ActivityTimeout.{cause.type.name}" if cause.type else "ActivityTimeout"
            self._error = f"The attempt was lost ({error_type}): the worker stopped or timed out"
        # The attempt usually recorded its own failure; this records it only when nobody did.
        await self._finalize(job, job_id, "failed", self._error, error_type)
        return self._finish("failed", {"jobId": job_id, "error": self._error})

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

    def _finish(self, step: str, result: dict[str, Any]) -> dict[str, Any]:
        self._step = step
        self._completed_at = workflow.now()
        return {"status": step, **result}

    @workflow.signal(name=SIGNAL_CANCEL)
    def cancel_job(self, request: dict[str, Any]) -> None:
        if self._cancel is not None or self._completed_at is not None:
            return
        self._cancel = dict(request or {})
        self._step = "cancelling"
        if self._attempt is not None and not self._attempt.done():
            self._attempt.cancel()

    @workflow.signal(name=SIGNAL_PROGRESS)
    def update_progress(self, update: dict[str, Any]) -> None:
        progress = (update or {}).get("progress")
        if isinstance(progress, int | float) and not isinstance(progress, bool):
            self._progress = float(progress)
        self._message = (update or {}).get("message", self._message)

    @workflow.query(name=QUERY_STATE)
    def get_job_state(self) -> dict[str, Any]:
        return {
            "step": self._step,
            "progress": self._progress,
            "message": self._message,
            "error": self._error,
            "startedAt": self._started_at.isoformat() if self._started_at else None,
            "completedAt": self._completed_at.isoformat() if self._completed_at else None,
        }
