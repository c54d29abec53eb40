"""django-q2's task functions, named by dotted path in async_task()."""

from __future__ import annotations

from bench import measure


def noop() -> None:
    return None


def probe(t0: float) -> None:
    measure.record_start(t0)
