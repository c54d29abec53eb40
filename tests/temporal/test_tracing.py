"""OpenTelemetry on Temporal, with the in-process worker: the attempt continues the enqueue's trace, carried in
the job's metadata, and the handler's own spans are children of the attempt."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from jobscheduler.models import Job
from jobscheduler.registry import JobHandlerRegistry, RetryPolicy
from tests.support import spans

from .conftest import wait_for_status, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def exporter():
    with spans.in_memory() as memory:
        yield memory


def test_attempt_spans_are_children_of_the_enqueue(runner, job_name, tenant, task_queue, exporter):
    calls = []

    def handler(job_id, data):
        calls.append(job_id)
        with trace.get_tracer("handler").start_as_current_span("render pdf"):
            if len(calls) == 1:
                raise RuntimeError("first attempt fails")

    JobHandlerRegistry.register(
        job_name, handler, retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100)
    )
    with trace.get_tracer("test").start_as_current_span("POST /reports") as request:
        job_id = runner.schedule_job(job_name, {}, tenant_id=tenant).job_id
    wait_for_status(job_id, "completed", timeout=60)

    def finished(prefix: str) -> list:
        return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]

    wait_until(lambda: len(finished("process")) == 2, timeout=20)
    [send] = finished("send")
    assert send.name == f"send {task_queue}" and send.kind == trace.SpanKind.PRODUCER
    assert send.parent.span_id == request.get_span_context().span_id
    assert send.attributes["messaging.message.id"] == job_id
    assert send.attributes["jobscheduler.backend"] == "temporal"
    assert (
        Job.objects.get(job_id=job_id).metadata["traceparent"].split("-")[2] == f"{send.context.span_id:016x}"
    )

    first, second = sorted(finished("process"), key=lambda s: s.attributes["jobscheduler.attempt"])
    for attempt in (first, second):
        assert attempt.kind == trace.SpanKind.CONSUMER
        assert attempt.context.trace_id == request.get_span_context().trace_id
        assert attempt.parent.span_id == send.context.span_id
        assert attempt.attributes["messaging.destination.name"] == task_queue
        assert attempt.attributes["messaging.operation.type"] == "process"
        assert attempt.attributes["messaging.message.id"] == job_id
    assert first.attributes["jobscheduler.outcome"] == "retry"
    assert first.status.status_code == trace.StatusCode.ERROR
    assert second.attributes["jobscheduler.outcome"] == "completed"
    renders = finished("render pdf")
    assert {r.parent.span_id for r in renders} == {first.context.span_id, second.context.span_id}
