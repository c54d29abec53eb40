"""OpenTelemetry spans for each enqueue and each attempt, the attempt a child of the enqueue.

The enqueuing code's trace context travels inside the job, as the W3C `traceparent` (and `tracestate`) in
`jobs.metadata`, so an attempt that runs minutes later in another process, on either backend, continues the
trace of the request that scheduled it. Attributes follow OpenTelemetry's messaging semantic conventions:
the enqueue is a PRODUCER span `send <queue>`, each attempt a CONSUMER span `process <queue>`.

opentelemetry-api is optional, and without an SDK configured by the site its tracer makes non-recording spans:
nothing is exported and no `traceparent` is written (an invalid context injects nothing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # opentelemetry-api is not installed: tracing is off
    trace = None

#: The metadata keys that carry the trace context (reserved: a caller's metadata may not set them).
CARRIER_KEYS = ("traceparent", "tracestate")
SYSTEM = "jobscheduler"


def _tracer():
    return trace.get_tracer("jobscheduler")


@contextlib.contextmanager
def enqueue_span(
    *, queue: str, job_type: str, backend: str, count: int = 1
) -> Iterator[tuple[dict[str, str], Any]]:
    """Around one enqueue (or one batch of `count`): yields the carrier to store in each job's metadata and
    the span (None without opentelemetry), on which the caller sets the job id once it is known."""
    if trace is None:
        yield {}, None
        return
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": queue,
        "jobscheduler.job.type": job_type,
        "jobscheduler.backend": backend,
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    with _tracer().start_as_current_span(
        f"send {queue}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield {k: v for k, v in carrier.items() if k in CARRIER_KEYS}, span


def set_job_id(span: Any, job_id: Any) -> None:
    if span is not None:
        span.set_attribute("messaging.message.id", str(job_id))


@contextlib.contextmanager
def attempt_span(
    *,
    carrier: Mapping[str, Any] | None,
    queue: str,
    job_type: str,
    job_id: Any,
    attempt: int,
    backend: str,
) -> Iterator[Any]:
    """Around one attempt: a CONSUMER span, child of the enqueue whose context `carrier` holds (a new trace
    when the job carries none). The handler runs inside it, so its own spans are children of the attempt."""
    if trace is None:
        yield None
        return
    parent = propagate.extract({k: str(v) for k, v in (carrier or {}).items() if k in CARRIER_KEYS and v})
    with _tracer().start_as_current_span(
        f"process {queue}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": str(job_id),
            "jobscheduler.job.type": job_type,
            "jobscheduler.attempt": attempt,
            "jobscheduler.backend": backend,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def end_attempt(span: Any, outcome: str, error: str | None = None) -> None:
    """Mark how the attempt ended (ERROR status for a failure, retried or not)."""
    if span is None:
        return
    span.set_attribute("jobscheduler.outcome", str(outcome))
    if error is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, error))
