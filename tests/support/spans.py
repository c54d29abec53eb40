"""OpenTelemetry SDK set-ups for the tracing tests: in memory in the test process, to a file in a worker."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once


@contextlib.contextmanager
def in_memory() -> Iterator[InMemorySpanExporter]:
    """An SDK exporting to memory for the block, then no SDK again, so the rest of the suite runs untraced
    (its jobs carry no traceparent). OpenTelemetry lets a process set its provider once; resetting it is what
    opentelemetry-python's own test utilities do (`reset_trace_globals`), written out here."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        trace._TRACER_PROVIDER_SET_ONCE = Once()
        trace._TRACER_PROVIDER = None


def export_to_file(path: str) -> None:
    """In a worker subprocess: every finished span as one JSON line in `path`."""
    out = open(path, "a", buffering=1)  # noqa: SIM115 (open for the life of the process)
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            ConsoleSpanExporter(out=out, formatter=lambda span: json.dumps(json.loads(span.to_json())) + "\n")
        )
    )
    trace.set_tracer_provider(provider)


def read_file(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
