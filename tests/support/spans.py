"""OpenTelemetry SDK set-ups for the tracing tests: in memory in the test process, to a file in a worker."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_memory: InMemorySpanExporter | None = None


def in_memory() -> InMemorySpanExporter:
    """The test process's exporter (a process has one tracer provider, so it is made once)."""
    global _memory
    if _memory is None:
        _memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_memory))
        trace.set_tracer_provider(provider)
    return _memory


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
