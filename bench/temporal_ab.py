"""The Temporal workload alone: our Temporal backend and bare temporalio, round after round, medians and ratios.

`make bench` measures our Temporal backend once beside a hundred other things; tuning it wants the two halves of
its ratio measured again and again, close together, on a machine other work makes noisy. Each round runs, on a
fresh in-memory dev server each, (1) N `schedule_job` calls one after another and one `runjobworker --backend
temporal` draining them (done = `jobs.status = 'completed'`, every job checked fully recorded afterwards),
then (2) N bare `start_workflow()` calls and one bare worker (bench/peers/temporal_worker.py, SDK defaults)
draining them (done = `count_workflows(Completed)`). Same definitions as workload (e) of bench/run.py, without
its latency phases. Bare Temporal runs in this interpreter: the bench virtualenv pins the same temporalio.

    .venv/bin/python -m bench.temporal_ab            # BENCH_AB_ROUNDS (3) rounds of BENCH_N_TEMPORAL (500) jobs

Prints one line per round and the medians; the JSON goes to bench/results/temporal-ab-<time>.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

from bench import config

os.environ.setdefault("BENCH_N_TEMPORAL", "500")
config.apply_defaults()

from bench import djsetup, measure, pg, procs, profiling, services, temporal_bench, workloads  # noqa: E402
from bench.db import Db  # noqa: E402
from bench.peers import temporal_driver  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_AB_ROUNDS", "3"))
#: `1`: the first round of ours also runs under py-spy (the driver while it enqueues, the worker while it drains)
#: with every statement logged by the server: where a job's time goes, on both sides of the record.
PROFILE = os.environ.get("BENCH_AB_PROFILE", "") not in ("", "0")


def _profiled(cfg: config.Config, db: Db, n: int, label: str, work) -> dict[str, Any]:
    raw = config.RESULTS_DIR / f"temporal-ab-{label}.raw.txt"
    offset = cluster_log().stat().st_size
    with profiling.server_tracing(cfg.pg_port):
        out = work(raw)
    out["statements"] = profiling.statements(cluster_log(), offset, limit=15)
    if raw.exists():
        out["py_spy"] = profiling.top_functions(raw, limit=40)
    return out


def _spied_drain(cfg: config.Config, db: Db, n: int, raw) -> dict[str, Any]:
    t_spawn = time.monotonic()
    worker = temporal_bench._worker(cfg, "temporal-ab-drain")
    try:
        with profiling.py_spy(worker.pid, ["--format", "raw", "-o", str(raw)], "temporal-ab-drain"):
            count = procs.guarded_counter(lambda: db.scalar(temporal_bench.DONE_SQL, ["noop"]), n, [worker])
            return measure.wait_progress(count, n, measure.PROC_TIMEOUT, "temporal", t_start=t_spawn)
    finally:
        procs.stop(worker)


def _spied_enqueue(n: int, raw) -> dict[str, Any]:
    with profiling.py_spy(os.getpid(), ["--format", "raw", "-o", str(raw)], "temporal-ab-enqueue"):
        return workloads.enqueue_single(n)


def _ours(cfg: config.Config, db: Db, profile: bool = False) -> dict[str, Any]:
    from django.test import override_settings

    n = cfg.n_temporal
    overrides = {
        "JOB_RUNNER_TYPE": "temporal",
        "TEMPORAL_ADDRESS": config.temporal_address(),
        "JOB_RUNNER_FALLBACK_TO_PGBOSS": False,
    }
    with services.TemporalDevServer(temporal_bench.TEMPORAL_CLI, config.temporal_port()):
        try:
            with override_settings(**overrides):
                djsetup.reset_runner()
                db.clean()
                before = db.counters()
                if profile:
                    enqueue = _profiled(cfg, db, n, "enqueue", lambda raw: _spied_enqueue(n, raw))
                else:
                    enqueue = workloads.enqueue_single(n)
                enqueue["postgres_per_job"] = db.per_job(before, db.counters(), n)
                if profile:
                    before = db.counters()
                    drain = _profiled(cfg, db, n, "drain", lambda raw: _spied_drain(cfg, db, n, raw))
                    drain["postgres_per_job"] = db.per_job(before, db.counters(), n)
                else:
                    drain = temporal_bench._drain(cfg, db, n)
                recorded = db.recorded("noop", n)
                db.clean()
        finally:
            djsetup.reset_runner()
    return {"enqueue": enqueue, "drain": drain, "recorded": recorded}


def _bare(n: int) -> dict[str, Any]:
    with services.TemporalDevServer(temporal_bench.TEMPORAL_CLI, config.temporal_port()):
        enqueue = asyncio.run(temporal_driver.enqueue_single(n, f"ab{time.monotonic_ns()}"))
        drain = temporal_driver.drain(n)
    return {"enqueue": enqueue, "drain": drain}


def _line(name: str, side: dict[str, Any]) -> str:
    e, d = side["enqueue"]["jobs_per_s"], side["drain"]["jobs_per_s"]
    steady = side["drain"].get("steady_jobs_per_s") or 0.0
    return f"{name:<10} starts {e:7.1f}/s  drain {d:7.1f}/s  steady {steady:7.1f}/s"


_cluster: pg.Cluster | None = None


def cluster_log():
    assert _cluster is not None
    return _cluster.log


def main() -> int:
    global _cluster
    cfg = config.load()
    cluster = _cluster = pg.Cluster(cfg.pg_port)
    rounds: list[dict[str, Any]] = []
    try:
        cluster.start()
        pg.recreate_db(cfg.pg_port, cfg.db_name)
        djsetup.migrate(cfg.database_url)
        djsetup.setup(cfg.database_url)
        db = Db(cfg.database_url)
        for i in range(ROUNDS):
            ours = _ours(cfg, db, profile=PROFILE and i == 0)
            bare = _bare(cfg.n_temporal)
            rounds.append({"ours": ours, "bare": bare, "loadavg": os.getloadavg()[0]})
            print(f"round {i + 1}: load {rounds[-1]['loadavg']:.1f}", flush=True)
            print("  " + _line("ours", ours), flush=True)
            print("  " + _line("bare", bare), flush=True)
            rec = ours["recorded"]
            print(f"  ours recorded: {rec}", flush=True)
            print(f"  ours postgres per job: start {ours['enqueue']['postgres_per_job']}", flush=True)
            print(f"                         drain {ours['drain']['postgres_per_job']}", flush=True)
            for phase in ("enqueue", "drain"):
                for key in ("statements", "py_spy"):
                    if key in ours[phase]:
                        print(f"  {phase} {key}: {json.dumps(ours[phase][key], indent=1)}", flush=True)
    finally:
        procs.stop_all()
        cluster.stop()

    def med(side: str, phase: str, key: str = "jobs_per_s") -> float:
        return statistics.median(r[side][phase][key] or 0.0 for r in rounds)

    summary = {
        "n": cfg.n_temporal,
        "rounds": len(rounds),
        "ours_starts": med("ours", "enqueue"),
        "bare_starts": med("bare", "enqueue"),
        "ours_drain": med("ours", "drain"),
        "bare_drain": med("bare", "drain"),
        "ratio_starts": statistics.median(
            r["ours"]["enqueue"]["jobs_per_s"] / r["bare"]["enqueue"]["jobs_per_s"] for r in rounds
        ),
        "ratio_drain": statistics.median(
            r["ours"]["drain"]["jobs_per_s"] / r["bare"]["drain"]["jobs_per_s"] for r in rounds
        ),
    }
    print(
        f"medians of {len(rounds)} rounds, N = {cfg.n_temporal}: starts ours {summary['ours_starts']:.1f}/s, "
        f"bare {summary['bare_starts']:.1f}/s, ratio {summary['ratio_starts']:.2f}x; drain ours "
        f"{summary['ours_drain']:.1f}/s, bare {summary['bare_drain']:.1f}/s, ratio {summary['ratio_drain']:.2f}x"
    )
    config.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = config.RESULTS_DIR / f"temporal-ab-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"summary": summary, "rounds": rounds}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
