"""OpenTelemetry spans across a real pgboss worker process: the enqueue is a child of the caller's span, each
attempt (in the worker, exporting to a file) a child of the enqueue, with the messaging attributes."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import InvalidJobData
from jobscheduler.models import Job
from tests.support import spans
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def exporter():
    with spans.in_memory() as memory:
        yield memory


def test_without_an_sdk_nothing_is_carried(tenant, fast_settings):
    job_id = JobRunnerFactory.get_instance().schedule_job("t.echo", {}, tenant_id=tenant).job_id
    assert "traceparent" not in Job.objects.get(job_id=job_id).metadata


def hex_id(value: int, width: int) -> str:
    return f"0x{value:0{width}x}"


def test_attempts_are_children_of_the_enqueue_across_the_worker(
    exporter, fast_settings, start_worker, tenant, tmp_path
):
    spans_file = tmp_path / "worker-spans.jsonl"
    start_worker("--jobs", "t.echo,t.flaky", extra_env={"TEST_SPANS_FILE": str(spans_file)})
    runner = JobRunnerFactory.get_instance()
    with trace.get_tracer("test").start_as_current_span("POST /invoices") as request:
        echo = runner.schedule_job("t.echo", {"n": 1}, tenant_id=tenant, queue="invoices").job_id
        flaky = runner.schedule_job("t.flaky", {"succeed_on": 2}, tenant_id=tenant).job_id
    request_ctx = request.get_span_context()

    sends = {
        s.attributes["messaging.message.id"]: s
        for s in exporter.get_finished_spans()
        if s.name.startswith("send")
    }
    assert set(sends) == {echo, flaky}
    send = sends[echo]
    assert send.name == "send invoices" and send.kind == trace.SpanKind.PRODUCER
    assert send.parent.span_id == request_ctx.span_id and send.context.trace_id == request_ctx.trace_id
    assert dict(send.attributes) == {
        "messaging.system": "jobscheduler",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "invoices",  # the job's queue
        "messaging.message.id": echo,
        "jobscheduler.job.type": "t.echo",
        "jobscheduler.backend": "pgboss",
    }
    traceparent = Job.objects.get(job_id=echo).metadata["traceparent"]
    assert traceparent == f"00-{request_ctx.trace_id:032x}-{send.context.span_id:016x}-01"

    def processed() -> list[dict]:
        return [s for s in spans.read_file(spans_file) if s["name"].startswith("process")]

    wait_for(lambda: len(processed()) == 3, timeout=60, message="3 attempt spans (1 echo, 2 flaky)")
    by_job: dict[str, list[dict]] = {}
    for span in processed():
        by_job.setdefault(span["attributes"]["messaging.message.id"], []).append(span)
    [attempt] = by_job[echo]
    assert attempt["name"] == "process invoices" and attempt["kind"] == "SpanKind.CONSUMER"
    assert attempt["context"]["trace_id"] == hex_id(request_ctx.trace_id, 32)
    assert attempt["parent_id"] == hex_id(send.context.span_id, 16)
    assert attempt["attributes"] == {
        "messaging.system": "jobscheduler",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "invoices",  # the job's queue
        "messaging.message.id": echo,
        "jobscheduler.job.type": "t.echo",
        "jobscheduler.attempt": 1,
        "jobscheduler.backend": "pgboss",
        "jobscheduler.outcome": "completed",
    }
    first, second = sorted(by_job[flaky], key=lambda s: s["attributes"]["jobscheduler.attempt"])
    assert sends[flaky].name == "send default"  # no queue named: the handler's, "default"
    assert first["name"] == second["name"] == "process default"
    assert {first["parent_id"], second["parent_id"]} == {hex_id(sends[flaky].context.span_id, 16)}
    assert (first["attributes"]["jobscheduler.outcome"], first["status"]["status_code"]) == ("retry", "ERROR")
    assert first["status"]["description"] == "ConnectionError: transient"
    assert (second["attributes"]["jobscheduler.outcome"], second["status"]["status_code"]) == (
        "completed",
        "UNSET",
    )


def test_bulk_enqueue_is_one_span_and_every_job_carries_it(exporter, tenant, fast_settings):
    results = JobRunnerFactory.get_instance().schedule_jobs(
        "t.echo", [{"n": i} for i in range(3)], tenant_id=tenant
    )
    [send] = exporter.get_finished_spans()
    assert send.attributes["messaging.batch.message_count"] == 3
    parents = {Job.objects.get(job_id=r.job_id).metadata["traceparent"] for r in results}
    assert parents == {f"00-{send.context.trace_id:032x}-{send.context.span_id:016x}-01"}


def test_traceparent_is_reserved_for_the_library(exporter, tenant, fast_settings):
    with pytest.raises(InvalidJobData) as raised:
        JobRunnerFactory.get_instance().schedule_job(
            "t.echo", {}, tenant_id=tenant, metadata={"traceparent": "x"}
        )
    assert str(raised.value) == "metadata keys are reserved by the job record: traceparent"
    assert not Job.objects.exists()
