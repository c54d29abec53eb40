"""OpenTelemetry spans for each enqueue and each attempt, the attempt a child of the enqueue.

The enqueuing code's trace context travels inside the job, as the W3C `traceparent` (and `tracestate`) in
`jobs.metadata`, so an attempt that runs minutes later in another process, on either backend, continues the
trace of the request that scheduled it. Attributes follow OpenTelemetry's messaging semantic conventions:
the enqueue is a PRODUCER span `send <queue>`, each attempt a CONSUMER span `process <queue>`.

opentelemetry-api is optional. Without an SDK configured by the site nothing happens: when the process never
imported opentelemetry no span is made at all, and when it did without an SDK the API's tracer makes
non-recording spans with an invalid context, which injects no `traceparent`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

#: The metadata keys that carry the trace context (reserved: a caller's metadata may not set them).
CARRIER_KEYS = ("traceparent", "tracestate")
SYSTEM = "jobscheduler"


def _otel() -> tuple[ModuleType, ModuleType] | None:
    """opentelemetry's `trace` and `propagate` when the process has imported opentelemetry, else None.

    A site that configured an SDK has imported it; one that did not has nothing to export to, so it is never
    imported here (its import costs half a second, which neither a worker's start-up nor a first request
    should pay)."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    return trace, importlib.import_module("opentelemetry.propagate")


@contextlib.contextmanager
def enqueue_span(
    *, queue: str, job_type: str, backend: str, count: int = 1
) -> Iterator[tuple[dict[str, str], Any]]:
    """Around one enqueue (or one batch of `count`): yields the carrier to store in each job's metadata and
    the span (None without opentelemetry), on which the caller sets the job id once it is known."""
    api = _otel()
    if api is None:
        yield {}, None
        return
    trace, propagate = api
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
    with trace.get_tracer("jobscheduler").start_as_current_span(
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
    api = _otel()
    if api is None:
        yield None
        return
    trace, propagate = api
    parent = propagate.extract({k: str(v) for k, v in (carrier or {}).items() if k in CARRIER_KEYS and v})
    with trace.get_tracer("jobscheduler").start_as_current_span(
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
        trace = _otel()[0]
        span.set_status(trace.Status(trace.StatusCode.ERROR, error))
