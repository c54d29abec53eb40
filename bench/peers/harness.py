"""What every peer driver shares: its result record, its processes, its database, and the phase sequence.

The phase sequence is the one our side runs (bench/run.py), so each column of the table means the same thing
on every row:

1. clean; N enqueues one call at a time                      → enqueue.single
2. one worker process spawned; time until all N finished     → processing[0]
3. clean; N enqueues through the bulk API in chunks of 1,000 → enqueue.bulk (or the peer's closest form under
   its own key; with none, a second one-by-one pass)
4. a second drain trial on those jobs                        → processing[1] (skipped when trial 1 took more
   than TRIAL2_MAX_S: it only bounds the slowest peers)
5. clean; idle-worker latency                                → latency (+ the peer's `extra`)
6. workflows, for a peer that has them (Celery's chord and chain) → workflow

Steps 1-5 run unless BENCH_WORKLOADS names only workloads without a peer side or only `workflow`, step 6 when
it names `workflow` (config.peer_phases). A failing phase is recorded in `errors` and the next phase runs; the result is always written.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bench import config, measure, procs

#: Where the launcher wants this peer's JSON and scratch files.
OUT_DIR = Path(os.environ.get("BENCH_PEER_OUT", str(config.RESULTS_DIR / "peers")))


def pkg_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def new_result(peer: str, dist: str, n: int) -> dict[str, Any]:
    return {
        "peer": peer,
        "version": pkg_version(dist),
        "n": n,
        "python": platform.python_version(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "enqueue": {},
        "processing": [],
        "latency": {},
        "settings": {},
        "errors": [],
        "notes": [],
    }


def latency_file(name: str) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"latency-{name}.txt"
    path.unlink(missing_ok=True)
    return path


def spawn(cmd: list[str], name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A peer's worker, from the repository root with it on PYTHONPATH (its app module is bench.peers.*)."""
    full = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    full["PYTHONPATH"] = os.pathsep.join(p for p in (str(config.REPO), full.get("PYTHONPATH", "")) if p)
    full.update(env or {})
    return procs.spawn(cmd, f"peer-{name}", full)


def recreate_db(name: str) -> None:
    """Each peer gets its own database, dropped and created afresh at set-up."""
    import psycopg

    with psycopg.connect(config.pg_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def execute(db: str, sql: str) -> None:
    """One statement on a short-lived connection (set-up and clean-up, never in a timed phase)."""
    import psycopg

    with psycopg.connect(config.pg_dsn(db), autocommit=True) as conn:
        conn.execute(sql)


class Poller:
    """One kept-open autocommit connection for the counts polled during a drain."""

    def __init__(self, db: str) -> None:
        import psycopg

        self.conn = psycopg.connect(config.pg_dsn(db), autocommit=True)

    def scalar(self, sql: str, params: Any = None) -> Any:
        return self.conn.execute(sql, params).fetchone()[0]

    def close(self) -> None:
        self.conn.close()


def drain(count: Callable[[], int], n: int, cmd: list[str], name: str, env: dict[str, str] | None = None):
    """Spawn one worker on N queued jobs and time it to all done (bench.measure.wait_progress)."""
    t_spawn = time.monotonic()
    worker = spawn(cmd, name, env)
    try:
        counter = procs.guarded_counter(count, n, [worker])
        return measure.wait_progress(counter, n, measure.PROC_TIMEOUT, f"{name} drain", t_start=t_spawn)
    finally:
        procs.stop(worker)


@dataclass
class Workloads:
    """A peer's implementation of the phases; `bulk` is None when the library has no bulk form."""

    setup: Callable[[], None]
    clean: Callable[[], None]
    single: Callable[[int], dict[str, Any]]
    bulk: Callable[[int], dict[str, Any]] | None
    drain: Callable[[int], dict[str, Any]]
    latency: Callable[[], dict[str, Any]]
    bulk_key: str = "bulk"
    extra: Callable[[dict[str, Any]], Any] | None = None
    #: The workflow workload (bench/workflow_bench.py defines it): {"fan_out": ..., "chain": ...}.
    workflow: Callable[[], dict[str, Any]] | None = None


def _on_term(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # the launcher's timeout: run the finally blocks, stop the workers


def run(res: dict[str, Any], n: int, w: Workloads) -> Path:
    """Run the phase sequence into `res`, write it to OUT_DIR/<peer>.json and return that path."""
    signal.signal(signal.SIGTERM, _on_term)
    res["load_avg_at_start"] = os.getloadavg()

    def phase(name: str, fn: Callable[[], Any]) -> Any:
        print(f"[{time.strftime('%H:%M:%S')}] {res['peer']}: {name}", file=sys.stderr, flush=True)
        try:
            out = fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - record, go on with the next phase
            res["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"  ERROR in {name}: {exc!r}", file=sys.stderr, flush=True)
            procs.stop_all()
            return None
        if isinstance(out, dict):
            out.setdefault("load_avg_1m_after", round(os.getloadavg()[0], 2))
            keys = ("jobs_per_s", "steady_jobs_per_s", "elapsed_s", "timeout", "p50_ms", "p99_ms", "n")
            brief = {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items() if k in keys}
            print(f"  -> {brief}", file=sys.stderr, flush=True)
        return out

    wanted = config.peer_phases(config.workloads_from_env())
    try:
        if phase("setup", w.setup) is None and res["errors"]:
            return save(res)
        if "standard" in wanted:
            _standard(res, n, w, phase)
        if config.PEER_WORKFLOW in wanted and w.workflow is not None:
            res["workflow"] = phase("workflows", w.workflow) or {}
    finally:
        procs.stop_all()
    return save(res)


def _standard(
    res: dict[str, Any], n: int, w: Workloads, phase: Callable[[str, Callable[[], Any]], Any]
) -> None:
    """Steps 1-5 of the sequence above into `res`."""
    phase("clean", w.clean)
    res["enqueue"]["single"] = phase(f"enqueue single x{n}", lambda: w.single(n))
    first = phase("drain, trial 1", lambda: w.drain(n)) if res["enqueue"]["single"] else None
    if first:
        first["preloaded_by"] = "single"
        res["processing"].append(first)
    phase("clean", w.clean)
    second_ok = bool(first) and not first.get("timeout") and first["elapsed_s"] <= measure.TRIAL2_MAX_S
    if w.bulk is not None:
        res["enqueue"][w.bulk_key] = phase(f"enqueue {w.bulk_key} x{n}", lambda: w.bulk(n))
        preload = w.bulk_key
    else:
        preload = "single_2"
        if second_ok:
            res["enqueue"][preload] = phase(f"enqueue single (2nd pass) x{n}", lambda: w.single(n))
    if second_ok and res["enqueue"].get(preload):
        second = phase("drain, trial 2", lambda: w.drain(n))
        if second:
            second["preloaded_by"] = preload
            res["processing"].append(second)
    else:
        res["notes"].append(f"drain trial 2 skipped (trial 1 took > {measure.TRIAL2_MAX_S:.0f} s or failed)")
    phase("clean", w.clean)
    res["latency"] = phase("latency", w.latency) or {}
    if w.extra is not None:
        phase("extra", lambda: w.extra(res))


def save(res: dict[str, Any]) -> Path:
    res["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in res["peer"]).strip("_")
    path = OUT_DIR / f"{safe}.json"
    path.write_text(json.dumps(res, indent=2, default=str))
    return path
