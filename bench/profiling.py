"""Where the time goes: the enqueue path (item 2 of the performance issue) and a drain (item 3).

Each profile runs after the timed phases, on its own jobs, because the tools cost time:

- py-spy samples the process doing the work (`--nonblocking`, 100 Hz): the bench driver itself for the
  one-by-one enqueue, the worker for the drain;
- the server logs every statement with its duration (`log_min_duration_statement = 0`) and times its WAL
  flushes (`track_wal_io_timing = on`), both switched on by ALTER SYSTEM + reload for the profiled phase only;
- per job: commits, WAL records, WAL bytes, WAL flushes and flush time (pg_stat_wal), rows written per table
  and the index entries they add (pg_stat_user_tables).
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench import measure, procs, workloads
from bench.config import LOG_DIR, RESULTS_DIR, Config
from bench.db import Db
from bench.pg import set_system

PY_SPY = Path(sys.executable).parent / "py-spy"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \w+ \[\d+\] ")
DURATION = re.compile(r"duration: ([\d.]+) ms\s+(?:(parse|bind|execute) [^:]*|statement): (.*)$")


@contextlib.contextmanager
def py_spy(pid: int, args: list[str], label: str) -> Iterator[None]:
    """py-spy attached to `pid` for the block; stopped with SIGINT (it then writes its output) if still running."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{label}-py-spy.log", "w") as log:
        spy = subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(pid), "--rate", "100", "--nonblocking", *args],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        time.sleep(0.5)  # attached before the work starts
        yield
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()


@contextlib.contextmanager
def server_tracing(port: int) -> Iterator[None]:
    """Statement durations in the server log and WAL flush timing, for the block only."""
    set_system(port, "log_min_duration_statement", "0")
    set_system(port, "track_wal_io_timing", "on")
    try:
        yield
    finally:
        set_system(port, "log_min_duration_statement", None)
        set_system(port, "track_wal_io_timing", None)


def costs(db: Db, n: int, work: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run `work` and return its result with what it cost the server per job."""
    before, writes_before = db.counters(), db.table_writes()
    result = work()
    after = db.counters()
    return result, db.per_job(before, after, n) | db.writes_per_job(writes_before, db.table_writes(), n)


def enqueue_profile(cfg: Config, db: Db, n: int, pg_log: Path) -> dict[str, Any]:
    """N one-by-one schedule_job calls under py-spy and statement logging; then N in bulk, counters only."""
    out: dict[str, Any] = {"n": n}
    raw = RESULTS_DIR / "profile-enqueue.raw.txt"
    db.clean()
    offset = pg_log.stat().st_size
    with server_tracing(cfg.pg_port), py_spy(os.getpid(), ["--format", "raw", "-o", str(raw)], "enqueue"):
        out["single"], out["single_per_job"] = costs(db, n, lambda: workloads.enqueue_single(n))
    out["statements"] = statements(pg_log, offset)
    if raw.exists():
        out["py_spy"] = top_functions(raw)
    db.clean()
    out["bulk"], out["bulk_per_job"] = costs(db, n, lambda: workloads.enqueue_bulk(n, cfg.bulk_chunk))
    db.clean()
    return out


def _profiled_drain(
    cfg: Config, db: Db, n: int, spy_args: list[str], label: str, trace: bool = False
) -> dict[str, Any]:
    """Drain N jobs with py-spy attached to the worker for its whole life (and the server tracing, if asked).

    The jobs are enqueued before the tracing starts, so the statement log holds the drain's statements only.
    """
    db.clean()
    workloads.enqueue_bulk(n, cfg.bulk_chunk)
    env = procs.worker_env(cfg.database_url)

    def drain() -> dict[str, Any]:
        t0 = time.monotonic()
        worker = procs.spawn_worker(workloads.worker_args(cfg), label, env)
        try:
            with py_spy(worker.pid, spy_args, label):
                count = procs.guarded_counter(lambda: n - db.remaining(), n, [worker])
                return measure.wait_progress(count, n, measure.PROC_TIMEOUT, label, t_start=t0)
        finally:
            procs.stop(worker)

    with server_tracing(cfg.pg_port) if trace else contextlib.nullcontext():
        out, out["per_job"] = costs(db, n, drain)
    db.clean()
    return out


def top_functions(raw: Path, limit: int = 20) -> dict[str, Any]:
    """Self and inclusive shares per function from py-spy's collapsed-stack (raw) output.

    Samples taken while the process was still importing (a worker's start-up) are counted apart: on a short
    smoke-size drain they would otherwise be most of the profile.
    """
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = startup = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if any("<frozen importlib._bootstrap" in f for f in frames):
            startup += k
            continue
        total += k
        if frames:
            self_t[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return {"self": [], "inclusive": [], "samples": 0, "startup_samples": startup}

    def shares(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(f, round(100.0 * v / total, 1)) for f, v in counter.most_common(limit)]

    return {"self": shares(self_t), "inclusive": shares(incl), "samples": total, "startup_samples": startup}


LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def normalise(statement: str) -> str:
    """One key per statement shape: literals (client-side bound values) become ?, whitespace is squeezed."""
    return " ".join(LITERAL.sub("?", statement).split())[:160]


def statements(log: Path, offset: int, limit: int = 12) -> list[dict[str, Any]]:
    """Sum the logged durations per statement (parse + bind + execute) from `offset` of the server log."""
    with open(log, "rb") as f:
        f.seek(offset)
        text = f.read().decode("utf-8", "replace")
    entries: list[str] = []
    for line in text.splitlines():
        if LOG_LINE.match(line):
            entries.append(line)
        elif entries and line.startswith(("\t", " ")):
            entries[-1] += " " + line.strip()
    total: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    for entry in entries:
        m = DURATION.search(entry)
        if not m:
            continue
        key = normalise(m.group(3))
        total[key] += float(m.group(1))
        if m.group(2) in (None, "execute"):
            calls[key] += 1
    grand = sum(total.values()) or 1.0
    return [
        {"statement": k, "total_ms": round(v, 1), "calls": calls[k], "share_pct": round(100 * v / grand, 1)}
        for k, v in total.most_common(limit)
    ]


def run(cfg: Config, db: Db, n: int, pg_log: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n}
    if not PY_SPY.exists():
        out["note"] = f"py-spy missing ({PY_SPY}): it is in requirements/dev.txt"
        return out
    out["enqueue"] = enqueue_profile(cfg, db, n, pg_log)
    raw = RESULTS_DIR / "profile.raw.txt"
    offset = pg_log.stat().st_size
    out["drain_raw"] = _profiled_drain(
        cfg, db, n, ["--format", "raw", "-o", str(raw)], "profile-raw", trace=True
    )
    if raw.exists():
        out["py_spy"] = top_functions(raw)
    out["statements"] = statements(pg_log, offset)
    svg = RESULTS_DIR / "profile.svg"
    out["drain_svg"] = _profiled_drain(cfg, db, n, ["-o", str(svg)], "profile-svg")
    out["flamegraph"] = svg.name
    return out
