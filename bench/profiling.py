"""Where a drain spends its time: py-spy on the worker, the server's statement log, and WAL/commit counts.

Runs after the timed drains, on its own drains, because both tools cost time: py-spy samples the worker
(`--nonblocking`, 100 Hz) and `log_min_duration_statement = 0` is switched on (ALTER SYSTEM + reload) only
for the profiled drain and reset right after.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import peer_common, procs, workloads
from bench.config import RESULTS_DIR, Config
from bench.db import Db
from bench.pg import PG_LOG, set_system

PY_SPY = Path(sys.executable).parent / "py-spy"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \w+ \[\d+\] ")
DURATION = re.compile(r"duration: ([\d.]+) ms\s+(?:(parse|bind|execute) [^:]*|statement): (.*)$")

STATS_SQL = """
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
       (SELECT wal_records FROM pg_stat_wal), (SELECT wal_bytes FROM pg_stat_wal),
       (SELECT wal_sync FROM pg_stat_wal), (SELECT wal_write FROM pg_stat_wal)
"""


def _profiled_drain(cfg: Config, db: Db, n: int, spy_args: list[str], label: str) -> dict[str, Any]:
    """Drain N jobs with py-spy attached to the worker for its whole life."""
    C = peer_common.load()
    db.clean()
    workloads.enqueue_bulk(n, cfg.bulk_chunk)
    env = procs.worker_env(cfg.database_url)
    before = db.row(STATS_SQL)
    t0 = time.monotonic()
    worker = procs.spawn_worker(workloads.worker_args(cfg), label, env)
    with open(RESULTS_DIR / "logs" / f"{label}-py-spy.log", "w") as spy_log:
        spy = subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(worker.pid), "--rate", "100", "--nonblocking", *spy_args],
            stdout=subprocess.DEVNULL,
            stderr=spy_log,
        )
    try:
        count = procs.guarded_counter(lambda: n - db.remaining(), n, [worker])
        out = C.wait_progress(count, n, C.PROC_TIMEOUT, label, t_start=t0)
    finally:
        procs.stop(worker)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
    after = db.row(STATS_SQL)
    names = ("commits", "wal_records", "wal_bytes", "wal_syncs", "wal_writes")
    out["per_job"] = {k: (float(a) - float(b)) / n for k, a, b in zip(names, after, before, strict=True)}
    db.clean()
    return out


def top_functions(raw: Path, limit: int = 20) -> dict[str, list[tuple[str, float]]]:
    """Self and inclusive shares per function from py-spy's collapsed-stack (raw) output."""
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if frames:
            self_t[frames[-1]] += k
        for f in set(frames):
            incl[f] += k
    if not total:
        return {"self": [], "inclusive": [], "samples": 0}
    pct = lambda c: [(f, round(100.0 * v / total, 1)) for f, v in c.most_common(limit)]  # noqa: E731
    return {"self": pct(self_t), "inclusive": pct(incl), "samples": total}


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
        key = " ".join(m.group(3).split())[:160]
        total[key] += float(m.group(1))
        if m.group(2) in (None, "execute"):
            calls[key] += 1
    grand = sum(total.values()) or 1.0
    return [
        {"statement": k, "total_ms": round(v, 1), "calls": calls[k], "share_pct": round(100 * v / grand, 1)}
        for k, v in total.most_common(limit)
    ]


def run(cfg: Config, db: Db, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n}
    if not PY_SPY.exists():
        out["note"] = f"py-spy missing ({PY_SPY}): .venv/bin/pip install py-spy"
        return out
    raw = RESULTS_DIR / "profile.raw.txt"
    log_offset = PG_LOG.stat().st_size if PG_LOG.exists() else None
    if log_offset is not None:
        set_system(cfg.pg_port, "log_min_duration_statement", "0")
    try:
        out["drain_raw"] = _profiled_drain(cfg, db, n, ["--format", "raw", "-o", str(raw)], "profile-raw")
    finally:
        if log_offset is not None:
            set_system(cfg.pg_port, "log_min_duration_statement", None)
    if raw.exists():
        out["py_spy"] = top_functions(raw)
    if log_offset is not None:
        out["statements"] = statements(PG_LOG, log_offset)
        out["statements_note"] = "log_min_duration_statement=0 during this drain only"
    else:
        out["statements_note"] = "server not started by us: its log path is unknown, statements not collected"
    svg = RESULTS_DIR / "profile.svg"
    out["drain_svg"] = _profiled_drain(cfg, db, n, ["-o", str(svg)], "profile-svg")
    out["flamegraph"] = str(svg)
    return out
