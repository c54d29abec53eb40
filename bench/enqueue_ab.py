"""The enqueue workloads alone, ours from one or more source trees and pgqueuer's, interleaved A/B on one cluster.

    .venv/bin/python -m bench.enqueue_ab [--rounds 5] [--tree before=DIR] [--tree after=.] [--no-pgqueuer]

Tuning the enqueue path needs before/after figures on a noisy machine: a full `make bench` takes too long to
repeat, and two runs an hour apart see different loads. This runs only workload (a) of bench/workloads.py
(`schedule_job` one by one in autocommit, `schedule_jobs` in chunks of BENCH_BULK_CHUNK) and pgqueuer's driver
phases of the same name, in rotating order, each round on one throw-away cluster (bench/pg.py), and prints
every trial and the median per system. Each tree gets its own database migrated with its own migrations, so
a tree that changes indexes is measured with its own schema. Each trial is its own process (warm-up
included, as in the bench); the tables are truncated after each trial.

pgqueuer runs in the bench virtualenv (`make bench` creates it; pgqueuer, asyncpg, uvloop and psycopg from
bench/peers/requirements.txt are all it needs here); `--no-pgqueuer` skips it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import ab, config

config.apply_defaults()

TRUNCATE = "TRUNCATE jobs, job_details, jobscheduler_queue"


def _child(tree: Path) -> None:
    """In a tree's own process: both enqueue workloads on its database, one JSON line on stdout."""
    from bench import djsetup, workloads

    djsetup.setup(os.environ["DATABASE_URL"])
    n = int(os.environ["BENCH_N"])
    single = workloads.enqueue_single(n)
    bulk = workloads.enqueue_bulk(n, int(os.environ.get("BENCH_BULK_CHUNK", "1000")))
    print(json.dumps({"single": single["jobs_per_s"], "bulk": bulk["jobs_per_s"]}))


def _pgqueuer_child() -> None:
    import asyncio

    from bench.peers import pgqueuer_driver as d

    n = int(os.environ["BENCH_N"])
    single = asyncio.run(d.enqueue_single(n))
    d.clean()
    bulk = asyncio.run(d.enqueue_bulk(n))
    d.clean()
    print(json.dumps({"single": single["jobs_per_s"], "bulk": bulk["jobs_per_s"]}))


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(cmd, cwd=str(cwd), env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tree", action="append", default=[], help="LABEL=DIR, a source tree of ours")
    ap.add_argument("--no-pgqueuer", action="store_true")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "ours":
        _child(Path.cwd())
        return 0
    if args.child == "pgqueuer":
        _pgqueuer_child()
        return 0
    import psycopg

    from bench import pg

    trees = ab.trees(args.tree)
    port = int(os.environ["BENCH_PG_PORT"])
    base_env = ab.base_env()
    cluster = pg.Cluster(port)
    results: dict[str, list[dict[str, float]]] = {}
    try:
        cluster.start()
        systems: list[tuple[str, list[str], Path, dict[str, str]]] = []
        for label, tree in trees.items():
            ab.require(tree, "enqueue_ab")
            env = ab.prepare_tree(label, tree, port, base_env)
            cmd = [sys.executable, "-m", "bench.enqueue_ab", "--child", "ours"]
            systems.append((label, cmd, tree, env))
        if not args.no_pgqueuer:
            python = config.PEER_VENV / "bin" / "python"
            env = dict(base_env, PYTHONPATH=str(config.REPO))
            subprocess.run(
                [str(python), "-c", "from bench.peers import pgqueuer_driver as d; d.setup()"],
                cwd=config.REPO,
                env=env,
                check=True,
            )
            systems.append(
                ("pgqueuer", [str(python), "-m", "bench.enqueue_ab", "--child", "pgqueuer"], config.REPO, env)
            )
        for r in range(args.rounds):
            order = systems[r % len(systems) :] + systems[: r % len(systems)]
            for label, cmd, cwd, env in order:
                res = _run(cmd, cwd, env)
                results.setdefault(label, []).append(res)
                print(
                    f"round {r + 1} {label:>10}: single {res['single']:8.0f}/s  bulk {res['bulk']:8.0f}/s",
                    flush=True,
                )
                if label != "pgqueuer":
                    with psycopg.connect(pg.dsn(port, ab.database(label)), autocommit=True) as conn:
                        conn.execute(TRUNCATE)
    finally:
        cluster.stop()
    print(f"\nN = {os.environ['BENCH_N']}, {args.rounds} rounds, medians:")
    for label, rows in results.items():
        single = statistics.median(r["single"] for r in rows)
        bulk = statistics.median(r["bulk"] for r in rows)
        print(f"{label:>10}: single {single:8.0f}/s  bulk {bulk:8.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
