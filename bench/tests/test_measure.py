from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench import measure


def test_percentile_interpolates_between_ranks_like_numpy_linear() -> None:
    values = [10.0, 1.0, 4.0, 2.0, 3.0]
    assert measure.percentile(values, 50) == 3.0
    assert measure.percentile(values, 0) == 1.0
    assert measure.percentile(values, 100) == 10.0
    assert measure.percentile(values, 90) == pytest.approx(4.0 + 0.6 * 6.0)


def test_wait_progress_steady_rate_interpolates_the_10_and_90_percent_crossings(monkeypatch) -> None:
    """Counts 0, 100, ..., 1000, one poll every simulated 0.5 s: 200 jobs/s between the 10% and 90% polls."""
    clock = itertools.count(0.0, 0.5)
    monkeypatch.setattr(measure.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(measure.time, "sleep", lambda s: None)
    counts = iter(range(0, 1001, 100))
    out = measure.wait_progress(lambda: next(counts), 1000, 600, "test", t_start=0.0)
    assert out["timeout"] is False
    assert out["done"] == 1000
    assert out["steady_jobs_per_s"] == pytest.approx(200.0)
    assert out["samples"][0] == (0.0, 0)


def test_wait_progress_reports_a_timeout_with_the_count_reached(monkeypatch) -> None:
    clock = itertools.count(0.0, 10.0)
    monkeypatch.setattr(measure.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(measure.time, "sleep", lambda s: None)
    out = measure.wait_progress(lambda: 7, 100, 25, "stuck", t_start=0.0)
    assert out["timeout"] is True
    assert out["done"] == 7
    assert out["steady_jobs_per_s"] is None


def test_latency_lines_round_trip_through_record_start(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "lat.txt"
    monkeypatch.setenv("BENCH_LAT_FILE", str(path))
    monkeypatch.setattr(measure.time, "time", lambda: 100.25)
    measure.record_start(100.0)
    measure.record_start(100.2)
    assert measure.count_lines(path) == 2
    assert measure.read_latencies(path) == pytest.approx([250.0, 50.0])
    summary = measure.latency_summary(measure.read_latencies(path), 2)
    assert summary["n"] == 2 and summary["p50_ms"] == pytest.approx(150.0)


def test_wait_workflow_rates_the_steps_over_schedule_call_to_the_poll_that_sees_the_last_step(
    monkeypatch,
) -> None:
    """Schedule call at t=10; polls at 10.5, 11.0, ... ; the last step is seen done by the 4th poll (t=12)."""
    clock = itertools.count(10.5, 0.5)
    monkeypatch.setattr(measure.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(measure.time, "sleep", lambda s: None)
    answers = iter([False, False, False, True])
    out = measure.wait_workflow(lambda: next(answers), 201, 600, "fan-out", t_start=10.0)
    assert out["timeout"] is False
    assert out["polls"] == 4
    assert out["elapsed_s"] == pytest.approx(2.0)
    assert out["steps_per_s"] == pytest.approx(100.5)


def test_wait_workflow_gives_no_rate_when_the_last_step_never_finishes(monkeypatch) -> None:
    clock = itertools.count(0.0, 10.0)
    monkeypatch.setattr(measure.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(measure.time, "sleep", lambda s: None)
    out = measure.wait_workflow(lambda: False, 50, 25, "chain", t_start=0.0)
    assert out["timeout"] is True
    assert out["steps_per_s"] is None
    assert out["elapsed_s"] == 30.0
