"""The workload definitions every system is measured with: ours in .venv, each peer in the bench virtualenv.

Standard library only, because the same module runs in both interpreters: one definition of "spawn → all
done", of the 10→90% steady rate, of the latency schedule and of its percentiles, so no figure in the table is
computed differently from its neighbour.

- Throughput: a counter of finished jobs is polled every POLL seconds from the moment the worker process is
  spawned; the rate is N ÷ (spawn → the poll that sees N), start-up included. The steady rate is 80% of N over
  the time between 10% and 90% done, interpolated between polls.
- Latency: the worker is up and idle (one warm-up probe has run, then 2 s of quiet); LAT_JOBS probes are
  enqueued on a fixed LAT_SPACING schedule; each probe's handler appends "t_enqueue t_start" (wall clock,
  same host) to a file; latency = t_start − t_enqueue, taken just before the enqueue call.
- Workflows: an idle, warmed-up worker; the whole graph is built first, then timed from the one call that
  schedules it until a poll every WF_POLL seconds sees its last step done; the rate is steps ÷ that time.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

N = int(os.environ.get("BENCH_N", "20000"))
N_TEMPORAL = int(os.environ.get("BENCH_N_TEMPORAL", "2000"))
BULK_CHUNK = int(os.environ.get("BENCH_BULK_CHUNK", "1000"))
LAT_JOBS = int(os.environ.get("BENCH_LAT_JOBS", "200"))
LAT_SPACING = float(os.environ.get("BENCH_LAT_SPACING", "0.020"))
#: Temporal cannot keep up with 50 starts a second on 2 cores; its unloaded latency is measured at 10 a second.
LAT_SPACING_LIGHT = float(os.environ.get("BENCH_LAT_SPACING_LIGHT", "0.100"))
POLL = float(os.environ.get("BENCH_POLL", "0.2"))
PROC_TIMEOUT = float(os.environ.get("BENCH_PROC_TIMEOUT", "600"))
ENQ_TIMEOUT = float(os.environ.get("BENCH_ENQ_TIMEOUT", "300"))
LAT_TIMEOUT = float(os.environ.get("BENCH_LAT_TIMEOUT", "60"))
STARTUP_TIMEOUT = float(os.environ.get("BENCH_STARTUP_TIMEOUT", "60"))
#: Workflow sizes: a fan-out of WF_WIDTH no-op steps and one fan-in after them all; a chain of WF_CHAIN steps.
WF_WIDTH = int(os.environ.get("BENCH_WF_WIDTH", "1000"))
WF_CHAIN = int(os.environ.get("BENCH_WF_CHAIN", "200"))
#: Our Temporal backend runs every step as a child workflow: smaller graphs keep its part of a run short.
WF_WIDTH_TEMPORAL = int(os.environ.get("BENCH_WF_WIDTH_TEMPORAL", "200"))
WF_CHAIN_TEMPORAL = int(os.environ.get("BENCH_WF_CHAIN_TEMPORAL", "50"))
#: A chain of quick steps can finish in a fraction of a second: the "last step done" poll is finer than POLL.
WF_POLL = float(os.environ.get("BENCH_WF_POLL", "0.01"))
WF_TIMEOUT = float(os.environ.get("BENCH_WF_TIMEOUT", "600"))
#: A second drain trial is skipped when the first took longer (it only bounds the slowest peers' runtime).
TRIAL2_MAX_S = float(os.environ.get("BENCH_TRIAL2_MAX_S", "120"))


class PhaseTimeout(Exception):
    """A phase ran past its time bound; the phase is recorded as failed and the run goes on."""


def check_deadline(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise PhaseTimeout(f"{what}: timed out")


def wait_progress(
    count: Callable[[], int], n: int, timeout: float, what: str, *, t_start: float
) -> dict[str, Any]:
    """Poll `count()` until it reaches n; the spawn→done rate, the steady rate and the samples behind them."""
    deadline = t_start + timeout
    samples: list[tuple[float, int]] = []
    while True:
        done = count()
        now = time.monotonic()
        samples.append((now, done))
        if done >= n:
            break
        if now > deadline:
            return {
                "timeout": True,
                "what": what,
                "done": done,
                "elapsed_s": now - t_start,
                "jobs_per_s": done / (now - t_start),
                "steady_jobs_per_s": None,
                "samples": _relative(samples, t_start),
            }
        time.sleep(POLL)
    t_end = samples[-1][0]
    t10, t90 = _time_at(samples, t_start, 0.10 * n), _time_at(samples, t_start, 0.90 * n)
    first = next((t for t, c in samples if c > 0), t_end)
    return {
        "timeout": False,
        "done": samples[-1][1],
        "elapsed_s": t_end - t_start,
        "jobs_per_s": n / (t_end - t_start),
        "first_completion_after_s": first - t_start,
        "steady_jobs_per_s": 0.8 * n / (t90 - t10) if t90 > t10 else None,
        "samples": _relative(samples, t_start),
    }


def wait_workflow(
    done: Callable[[], bool], steps: int, timeout: float, what: str, *, t_start: float
) -> dict[str, Any]:
    """Poll `done()` every WF_POLL seconds until it is true; steps ÷ (t_start → the poll that saw it).

    `t_start` is taken just before the call that schedules the workflow, so the figure includes writing the
    graph, every hand-over from a step to the ones it releases, and at most one poll interval.
    """
    deadline = t_start + timeout
    polls = 0
    while True:
        finished = done()
        now = time.monotonic()
        polls += 1
        if finished or now > deadline:
            break
        time.sleep(WF_POLL)
    elapsed = now - t_start
    return {
        "what": what,
        "steps": steps,
        "timeout": not finished,
        "elapsed_s": elapsed,
        "steps_per_s": steps / elapsed if finished and elapsed > 0 else None,
        "polls": polls,
    }


def _time_at(samples: list[tuple[float, int]], t_start: float, target: float) -> float:
    """When the counter crossed `target`, by linear interpolation between the two polls around it."""
    prev_t, prev_c = t_start, 0
    for t, c in samples:
        if c >= target:
            if c == prev_c:
                return t
            return prev_t + (t - prev_t) * (target - prev_c) / (c - prev_c)
        prev_t, prev_c = t, c
    return samples[-1][0]


def _relative(samples: list[tuple[float, int]], t_start: float) -> list[tuple[float, int]]:
    """(seconds since spawn, jobs done): kept in the JSON, it shows start-up, stalls and tails."""
    return [(round(t - t_start, 2), c) for t, c in samples]


def record_start(t_enqueue: float) -> None:
    """First thing a probe handler does: one O_APPEND write, so lines of concurrent handlers never mix."""
    line = f"{t_enqueue!r} {time.time()!r}\n".encode()
    fd = os.open(os.environ["BENCH_LAT_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def read_latencies(path: Path) -> list[float]:
    """Milliseconds from enqueue to handler start, one per probe line."""
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                out.append((float(parts[1]) - float(parts[0])) * 1000.0)
    return out


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between the two nearest ranks (numpy's default method)."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def latency_summary(lat_ms: list[float], expected: int, spacing_s: float = LAT_SPACING) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(lat_ms), "expected": expected, "spacing_ms": spacing_s * 1000}
    if lat_ms:
        out |= {
            "p50_ms": percentile(lat_ms, 50),
            "p95_ms": percentile(lat_ms, 95),
            "p99_ms": percentile(lat_ms, 99),
            "max_ms": max(lat_ms),
            "mean_ms": statistics.fmean(lat_ms),
        }
    return out


def spaced_schedule(n: int = LAT_JOBS, spacing: float = LAT_SPACING) -> Iterator[int]:
    """Yield i at start + i × spacing: a slow enqueue call delays one probe, never the ones after it."""
    start = time.monotonic()
    for i in range(n):
        delay = start + i * spacing - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield i


async def aspaced_schedule(n: int = LAT_JOBS, spacing: float = LAT_SPACING) -> AsyncIterator[int]:
    import asyncio

    start = time.monotonic()
    for i in range(n):
        delay = start + i * spacing - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


def probe_latency(
    enqueue: Callable[[], None], path: Path, n: int = LAT_JOBS, spacing: float = LAT_SPACING
) -> dict[str, Any]:
    """The latency procedure for a synchronous client, the worker already spawned and writing to `path`."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while count_lines(path) == 0:
        check_deadline(deadline, "latency warm-up")
        enqueue()
        time.sleep(1.0)
    time.sleep(2.0)
    path.unlink()
    for _ in spaced_schedule(n, spacing):
        enqueue()
    deadline = time.monotonic() + LAT_TIMEOUT
    while count_lines(path) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return latency_summary(read_latencies(path), n, spacing)


async def aprobe_latency(
    enqueue: Callable[[], Any], path: Path, n: int = LAT_JOBS, spacing: float = LAT_SPACING
) -> dict[str, Any]:
    """The same procedure for an asyncio client: `enqueue()` returns an awaitable."""
    import asyncio

    deadline = time.monotonic() + STARTUP_TIMEOUT
    while count_lines(path) == 0:
        check_deadline(deadline, "latency warm-up")
        await enqueue()
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)
    path.unlink()
    async for _ in aspaced_schedule(n, spacing):
        await enqueue()
    deadline = time.monotonic() + LAT_TIMEOUT
    while count_lines(path) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return latency_summary(read_latencies(path), n, spacing)


def timed_enqueue(n: int, enqueue_one: Callable[[], None], api: str) -> dict[str, Any]:
    """n calls one after another; the phase gives up (PhaseTimeout) past ENQ_TIMEOUT."""
    deadline = time.monotonic() + ENQ_TIMEOUT
    t = time.perf_counter()
    for i in range(n):
        enqueue_one()
        if i % 500 == 0:
            check_deadline(deadline, "enqueue")
    dt = time.perf_counter() - t
    return {"n": n, "seconds": dt, "jobs_per_s": n / dt, "api": api}


async def atimed_enqueue(n: int, enqueue_one: Callable[[], Any], api: str) -> dict[str, Any]:
    """timed_enqueue for an asyncio client: each call's awaitable is awaited before the next call."""
    deadline = time.monotonic() + ENQ_TIMEOUT
    t = time.perf_counter()
    for i in range(n):
        await enqueue_one()
        if i % 500 == 0:
            check_deadline(deadline, "enqueue")
    dt = time.perf_counter() - t
    return {"n": n, "seconds": dt, "jobs_per_s": n / dt, "api": api}
