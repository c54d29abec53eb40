"""Running one claimed attempt: look the handler up, call it, and say how the attempt ended.

Nothing here touches the queue: the outcome goes back to the executor, and the completer records it (fenced) in a
batch.
Nothing is unpickled: a job's name only selects a registered handler (or, through the registry's resolver, a
`django.tasks` Task of our backend at that module path; nothing else found by name is ever called), and its
data is JSON.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from .. import outcomes, tracking
from ..context import JobContext, activate, deactivate
from ..exceptions import InvalidJobData, JobCancelled, JobHandlerNotFound, JobTimeout, PayloadTooLarge
from ..outcomes import timeout_message
from ..queues import DEFAULT_QUEUE
from ..registry import JobHandlerRegistry, RetryPolicy
from ..states import Outcome, RunnerType
from ..telemetry import tracing
from ..validation import payload_size
from .writes import HandlerWrite, ProgressWrite, StepWrite


@dataclass(eq=False)
class Attempt:
    """A claimed attempt, from claim to recorded outcome."""

    job_id: uuid.UUID
    tenant: uuid.UUID
    name: str
    attempt: int
    max_attempts: int
    token: uuid.UUID
    data: Any
    #: The job's queue (the metrics' `queue` label).
    queue: str = DEFAULT_QUEUE
    deadline: float = 0.0
    #: time.monotonic() when it was claimed, for its run time.
    started: float = 0.0
    #: time.monotonic() when its outcome was decided.
    ended: float = 0.0
    #: The enqueue's trace context (`traceparent`, `tracestate`), parent of the attempt's span.
    trace: dict[str, str | None] | None = None
    ctx: QueueJobContext | None = None
    thread: threading.Thread | None = None
    loop: asyncio.AbstractEventLoop | None = None
    task: asyncio.Task | None = None
    done: bool = False
    lost: bool = False


class QueueJobContext(JobContext):
    """`current_job()` under the pgboss worker: writes are handed to the completer, which owns the connection."""

    def __init__(self, attempt: Attempt, submit: Callable[[HandlerWrite], None]) -> None:
        super().__init__(
            job_id=attempt.job_id,
            tenant=attempt.tenant,
            job_name=attempt.name,
            attempt=attempt.attempt,
            data=attempt.data,
        )
        self._submit = submit

    def _save_progress(self, pct: float, message: str | None) -> None:
        self._submit(
            ProgressWrite(
                tenant=self.tenant, job_id=self.job_id, attempt=self.attempt, pct=pct, message=message
            )
        )

    def _save_step(self, name: str, status: str, result_json: str | None) -> None:
        self._submit(
            StepWrite(
                tenant=self.tenant,
                job_id=self.job_id,
                attempt=self.attempt,
                name=name,
                status=status,
                result_json=result_json,
            )
        )


def apply_write(conn: psycopg.Connection, write: HandlerWrite) -> None:
    """Record a write a handler handed over through its QueueJobContext (progress or a step of its own)."""
    with conn.cursor() as cur:
        write.apply(cur)


def finish_statement_params(ended: list[tuple[Attempt, tracking.AttemptOutcome]]) -> dict[str, list]:
    """The parameters of `sql.FINISH` for these attempts: their outcomes, fenced by the leases they hold, and the
    backoffs the statement turns into next run times by the database clock."""
    params = tracking.outcome_columns([o for _, o in ended])
    params["tokens"] = [a.token for a, _ in ended]
    params["delays"] = [o.retry_delay_ms for _, o in ended]
    return params


def failure_outcome(
    attempt: Attempt, error: BaseException, policy: RetryPolicy | None, *, with_traceback: bool = True
) -> tracking.AttemptOutcome:
    """A failed attempt: retried after its backoff while the policy allows, failed otherwise (`policy` None: a
    failure before the handler ran, never retried and without a traceback). How it reads is `outcomes`'."""
    retryable = policy is not None and policy.is_retryable(error) and attempt.attempt < attempt.max_attempts
    return outcomes.failed(
        attempt.tenant,
        attempt.job_id,
        attempt.attempt,
        error,
        will_retry=retryable,
        with_traceback=with_traceback and policy is not None,
        retry_delay_ms=policy.delay_ms(attempt.attempt) if retryable else None,
    )


def simple_outcome(
    attempt: Attempt, outcome: Outcome, *, result_json: str | None = None, reason: str | None = None
) -> tracking.AttemptOutcome:
    """An outcome whose fields are given as they are recorded (a release, or a test's outcome)."""
    return tracking.AttemptOutcome(
        tenant=attempt.tenant,
        job_id=attempt.job_id,
        attempt=attempt.attempt,
        outcome=outcome,
        result_json=result_json,
        error=reason,
    )


#: PostgreSQL prints JSONB with spaces, UTF-8 characters and expanded numbers (1e300 has 301 digits), so its text
#: of a payload enqueue accepted can be longer than the payload's compact JSON. Text this many times over the
#: limit is refused without decoding (a row written by hand must not make the worker parse gigabytes).
DECODE_GUARD_FACTOR = 64


def decode_data(text: str | None, max_bytes: int) -> dict:
    """The payload of a claimed row, or the error that fails it: rows may have been written by hand, so the
    worker checks what enqueue would have refused (size, shape) and never trusts the nesting depth. The size is
    measured as enqueue measures it (compact JSON, `validation.payload_size`), not on PostgreSQL's text."""
    if text is not None:
        raw = len(text.encode("utf-8"))
        if raw > DECODE_GUARD_FACTOR * max_bytes:
            raise PayloadTooLarge(raw, max_bytes)
        try:
            data = json.loads(text)
        except RecursionError:
            raise InvalidJobData("Job data is nested too deeply to decode") from None
    else:
        data, raw = None, 0
    if not isinstance(data, dict):
        raise InvalidJobData(f"Job data must be a JSON object, got {type(data).__name__}")
    if raw > max_bytes:  # PostgreSQL's text is longer than the limit: measure the way enqueue did
        size = payload_size(data)
        if size > max_bytes:
            raise PayloadTooLarge(size, max_bytes)
    return data


def run_attempt(
    attempt: Attempt, loop_for_thread: Callable[[], asyncio.AbstractEventLoop], max_payload_bytes: int
) -> tracking.AttemptOutcome:
    """Call the handler for one attempt, inside the attempt's span, and turn what happened into an outcome."""
    with tracing.attempt_span(
        carrier=attempt.trace,
        queue=attempt.queue,
        job_type=attempt.name,
        job_id=attempt.job_id,
        attempt=attempt.attempt,
        backend=RunnerType.PGBOSS,
    ) as span:
        outcome = _run_handler(attempt, loop_for_thread, max_payload_bytes)
        tracing.end_attempt(span, outcome.outcome, outcome.error if outcome.outcome in FAILURES else None)
    return outcome


FAILURES = (Outcome.FAILED, Outcome.RETRY)


def _run_handler(
    attempt: Attempt, loop_for_thread: Callable[[], asyncio.AbstractEventLoop], max_payload_bytes: int
) -> tracking.AttemptOutcome:
    try:
        spec = JobHandlerRegistry.get(attempt.name)
        attempt.data = decode_data(attempt.data, max_payload_bytes)
    except (JobHandlerNotFound, InvalidJobData, PayloadTooLarge) as exc:
        return failure_outcome(attempt, exc, None)
    if attempt.ctx is not None:
        attempt.ctx.data = attempt.data
    token = activate(attempt.ctx)
    try:
        if spec.is_async:
            loop = loop_for_thread()
            attempt.loop = loop
            attempt.task = loop.create_task(spec.handler(str(attempt.job_id), attempt.data))
            result = loop.run_until_complete(attempt.task)
        else:
            result = spec.handler(str(attempt.job_id), attempt.data)
    except JobCancelled as exc:
        return outcomes.cancelled(attempt.tenant, attempt.job_id, attempt.attempt, str(exc))
    except (asyncio.CancelledError, JobTimeout):
        if attempt.ctx is not None and attempt.ctx.is_cancelled:
            return outcomes.cancelled(attempt.tenant, attempt.job_id, attempt.attempt)
        return failure_outcome(attempt, JobTimeout(timeout_message(spec.timeout_ms)), spec.retry)
    except BaseException as exc:  # a handler's SystemExit or KeyboardInterrupt fails the job, not the worker
        if attempt.ctx is not None and attempt.ctx.is_cancelled:
            return outcomes.cancelled(attempt.tenant, attempt.job_id, attempt.attempt)
        return failure_outcome(attempt, exc, spec.retry)
    finally:
        deactivate(token)
    if attempt.ctx is not None and attempt.ctx.is_cancelled:
        return outcomes.cancelled(attempt.tenant, attempt.job_id, attempt.attempt)
    return outcomes.completed(attempt.tenant, attempt.job_id, attempt.attempt, result)
