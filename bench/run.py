"""`make bench`: our workloads and the peers', same definitions, same PostgreSQL 15, one table with ratios.

One invocation starts a throw-away PostgreSQL cluster, runs our side in this process (.venv) through the
public API and every peer in BENCH_PEERS in the bench virtualenv (bench/peers/), each peer between the
workloads of ours it is compared with (see run_ours), with Redis or a Temporal dev server around the peers
that need one, stops everything it started, and prints the table.

Sizes come from the environment (see bench/config.py): BENCH_SMOKE=1 for a quick run, BENCH_N (20,000),
BENCH_CONCURRENCY (100), BENCH_SCALE_FINISHED / BENCH_SCALE_QUEUED (1,000,000 / 100,000), BENCH_MEM_N
(1,000,000), BENCH_N_TEMPORAL, BENCH_DASHBOARD_ROWS, BENCH_WF_WIDTH / BENCH_WF_CHAIN (1,000 / 200),
BENCH_PEERS ("none" to skip), BENCH_WORKLOADS (comma list of enqueue, drain, latency, workflow, profile,
scale, memory, temporal, dashboard, peers). Results: bench/results/bench-<time>.{json,md} and latest.*.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import config  # noqa: E402

config.apply_defaults()  # before bench.measure reads the sizes

from bench import djsetup, measure, pg, procs  # noqa: E402
from bench.peers import launch  # noqa: E402
from bench.summary import render  # noqa: E402


class Phases:
    """Runs named phases, recording (not raising) each failure, as the peer drivers do."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
        try:
            out = fn()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - record, go on with the next phase
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"  ERROR {exc!r}\n{traceback.format_exc()}", flush=True)
            procs.stop_all()
            return None
        if isinstance(out, dict):
            brief = {k: round(v, 1) if isinstance(v, float) else v for k, v in out.items() if _brief(k, v)}
            print(f"  -> {brief}", flush=True)
        return out


def _brief(key: str, value: Any) -> bool:
    return key in ("jobs_per_s", "steady_jobs_per_s", "elapsed_s", "p50_ms", "p99_ms", "ok", "timeout")


def machine(cfg: config.Config) -> dict[str, Any]:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "host": " ".join(platform.uname()[0:3:2]),
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
        "postgres": pg.settings(cfg.pg_port),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "git": _git_state(),
    }


def _git_state() -> str:
    """HEAD plus whether jobscheduler/ had uncommitted edits: the engine changes while benches run."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=config.REPO, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--short", "jobscheduler")
    return git("rev-parse", "--short", "HEAD") + (
        f" + uncommitted: {dirty.replace(chr(10), ', ')}" if dirty else ""
    )


def run_ours(
    cfg: config.Config, phase: Phases, cluster: pg.Cluster, run_peers: Callable[[list[str]], None]
) -> dict[str, Any]:
    """Our workloads, with the peers run in between: each ratio's two halves are measured minutes apart.

    The machine is noisy, so the queue peers run right after our enqueue, drain, latency and workflow phases
    (Celery's chord and chain are its driver's last phase), and bare Temporal right after our Temporal
    backend (our Temporal workflows, which have no bare-Temporal twin, come after it); the workloads with no peer (profile, scale, memory, dashboard)
    come last. Every figure of ours lands in one dict.
    """
    from bench import dashboard_bench, profiling, scale, temporal_bench, workflow_bench, workloads
    from bench.db import Db

    db = Db(pg.dsn(cfg.pg_port, cfg.db_name))
    n = cfg.n
    ours: dict[str, Any] = {
        "peer": "jobscheduler (pgboss)",
        "n": n,
        "enqueue": {},
        "processing": [],
        "checks": [],
    }
    two: dict[str, Any] = {"n": n, "enqueue": {}, "processing": []}
    out: dict[str, Any] = {"pgboss": ours, "pgboss_2procs": two}

    def trial(into: dict[str, Any], processes: int, label: str) -> None:
        r = phase(
            f"{label}: drain {n} with {processes} worker process(es)",
            lambda: workloads.drain(cfg, db, n, processes, label),
        )
        if r:
            into["processing"].append(r)
            check = db.recorded("noop", n)
            check["trial"] = label
            ours["checks"].append(check)
            print(f"  recorded check ({label}): {check}", flush=True)

    if cfg.workloads & {"enqueue", "drain"}:
        phase("clean", db.clean)
        ours["enqueue"]["single"] = phase(f"enqueue single x{n}", lambda: workloads.enqueue_single(n))
        if "drain" in cfg.workloads:
            trial(ours, 1, "trial1")
        phase("clean", db.clean)
        ours["enqueue"]["bulk"] = phase(
            f"enqueue bulk x{n}", lambda: workloads.enqueue_bulk(n, cfg.bulk_chunk)
        )
        if "drain" in cfg.workloads:
            trial(ours, 1, "trial2")
            phase("clean", db.clean)
            phase(f"enqueue bulk x{n} (for 2 processes)", lambda: workloads.enqueue_bulk(n, cfg.bulk_chunk))
            trial(two, 2, "two-procs")
        phase("clean", db.clean)
    if "latency" in cfg.workloads:
        ours["latency"] = phase("latency", lambda: workloads.latency(cfg, db)) or {}
        phase("clean", db.clean)
    if "workflow" in cfg.workloads:
        out["workflow"] = {
            "pgboss": phase(
                f"workflow: fan-out of {measure.WF_WIDTH} + fan-in, chain of {measure.WF_CHAIN} (pgboss)",
                lambda: workflow_bench.run_pgboss(cfg, db),
            )
        }
    run_peers([p for p in cfg.peers if p != "temporal"])
    if "temporal" in cfg.workloads:
        out["temporal"] = phase("temporal backend", lambda: temporal_bench.run(cfg, db))
    run_peers(["temporal"])
    if "workflow" in cfg.workloads and (measure.WF_WIDTH_TEMPORAL or measure.WF_CHAIN_TEMPORAL):
        out["workflow"]["temporal"] = phase(
            f"workflow: fan-out of {measure.WF_WIDTH_TEMPORAL} + fan-in, chain of {measure.WF_CHAIN_TEMPORAL} "
            "(temporal)",
            lambda: workflow_bench.run_temporal(cfg, db),
        )
    if "profile" in cfg.workloads:
        out["profile"] = phase(
            "profile: enqueue and drain (py-spy + statement log)",
            lambda: profiling.run(cfg, db, n, cluster.log),
        )
    if "scale" in cfg.workloads:
        out["scale"] = phase(
            f"scale: {cfg.scale_queued} queued, empty vs {cfg.scale_finished} finished",
            lambda: scale.claim_complete(cfg, db, cfg.scale_finished, cfg.scale_queued),
        )
    if "memory" in cfg.workloads:
        out["memory"] = phase(
            f"memory: one worker over {cfg.mem_n} jobs", lambda: scale.memory(cfg, db, cfg.mem_n)
        )
    db.close()
    if "dashboard" in cfg.workloads:
        out["dashboard"] = phase(
            f"dashboard: {cfg.dashboard_rows:,} jobs in one tenant", lambda: dashboard_bench.run(cfg)
        )
    out["settings"] = {
        "concurrency": cfg.concurrency,
        "lat_jobs": measure.LAT_JOBS,
        "lat_spacing_s": measure.LAT_SPACING,
        "wf_poll_s": measure.WF_POLL,
    }
    return out


def save(result: dict[str, Any], text: str) -> None:
    config.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"bench-{stamp}", "latest"):
        (config.RESULTS_DIR / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        (config.RESULTS_DIR / f"{name}.md").write_text(text + "\n")
    print(f"\nresults: {config.RESULTS_DIR}/bench-{stamp}.json and .md (also latest.*)")


def main() -> int:
    try:
        cfg = config.load()
    except config.ConfigError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    errors: list[str] = []
    phase = Phases(errors)
    cluster = pg.Cluster(cfg.pg_port)
    result: dict[str, Any] = {"config": cfg.__dict__ | {"workloads": sorted(cfg.workloads)}, "errors": errors}
    try:
        try:
            cluster.start()
        except pg.ServerError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        result["machine"] = machine(cfg)
        url = cfg.database_url
        pg.recreate_db(cfg.pg_port, cfg.db_name)
        djsetup.migrate(url)
        djsetup.setup(url)
        launch.reset()
        peers: dict[str, Any] = {}
        result["peers"] = peers

        def run_peers(names: list[str]) -> None:
            names = [p for p in names if p in cfg.peers]
            if names and "peers" in cfg.workloads:
                peers.update(phase(f"peers: {' '.join(names)}", lambda: launch.run(names, errors)) or {})

        result["ours"] = run_ours(cfg, phase, cluster, run_peers)
    finally:
        procs.stop_all()
        cluster.stop()
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    result.setdefault("machine", {})["loadavg_at_end"] = os.getloadavg()
    text = render(result)
    print("\n" + text)
    save(result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
