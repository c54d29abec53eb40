"""The drain alone, ours from two or more source trees, interleaved A/B on one cluster, with CPU per job.

    .venv/bin/python -m bench.drain_ab [--rounds 5] --tree before=DIR [--tree after=.]

A change to the worker or the schema is judged by the drain on a noisy 2-core machine, where two runs of
`make bench` an hour apart see different loads. This runs only workload (b) of bench/workloads.py (N no-op jobs
enqueued with `schedule_jobs`, then one `runjobworker --burst --no-scheduler --concurrency C` spawned and timed
until the queue is empty), for each tree in rotating order, round after round, and prints every trial and the
medians. Besides jobs/s it reports the CPU time per job of the whole machine (database, worker, this driver's
polls: what a 2-core drain is limited by, and less sensitive to other load than the rate) and of the worker
process alone. Each tree is measured with its own code and schema (bench/ab.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import ab, config

config.apply_defaults()


def _child() -> None:
    """In a tree's own process: empty the tables, enqueue N no-op jobs, checkpoint (the drain starts clean)."""
    from django.db import connection

    from bench import djsetup, workloads

    djsetup.setup(os.environ["DATABASE_URL"])
    with connection.cursor() as cur:
        cur.execute("TRUNCATE jobs, job_details, jobscheduler_queue")
    workloads.enqueue_bulk(int(os.environ["BENCH_N"]), int(os.environ.get("BENCH_BULK_CHUNK", "1000")))
    with connection.cursor() as cur:
        cur.execute("CHECKPOINT")


def _busy_seconds() -> float:
    """CPU time the whole machine has spent not idle since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _drain(tree: Path, env: dict[str, str], n: int, concurrency: int) -> dict[str, float]:
    import psycopg

    subprocess.run([sys.executable, "-m", "bench.drain_ab", "--child"], cwd=tree, env=env, check=True)
    args = ["--burst", "--no-scheduler", "--concurrency", str(concurrency)]
    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as observer:
        worker_cpu, busy, start = _children_cpu(), _busy_seconds(), time.monotonic()
        worker = subprocess.Popen(
            [sys.executable, "bench/worker_main.py", *args],
            cwd=tree,
            env=dict(env, DEBUG="false", PYTHONUNBUFFERED="1"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while observer.execute("SELECT count(*) FROM jobscheduler_queue").fetchone()[0]:
            if worker.poll() is not None:
                raise SystemExit(
                    f"bench: the worker of {tree} exited with jobs left (code {worker.returncode})"
                )
            time.sleep(0.05)
        elapsed, busy = time.monotonic() - start, _busy_seconds() - busy
        worker.wait(timeout=60)
    return {
        "jobs_per_s": n / elapsed,
        "cpu_us_per_job": busy / n * 1e6,
        "worker_cpu_us_per_job": (_children_cpu() - worker_cpu) / n * 1e6,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tree", action="append", default=[], help="LABEL=DIR, a source tree of ours")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child()
        return 0
    from bench import pg

    trees = ab.trees(args.tree)
    n, concurrency = int(os.environ["BENCH_N"]), int(os.environ.get("BENCH_CONCURRENCY", "100"))
    port = int(os.environ["BENCH_PG_PORT"])
    cluster = pg.Cluster(port)
    results: dict[str, list[dict[str, float]]] = {}
    try:
        cluster.start()
        envs = {}
        for label, tree in trees.items():
            ab.require(tree, "drain_ab")
            envs[label] = ab.prepare_tree(label, tree, port, ab.base_env())
        labels = list(trees)
        for r in range(args.rounds):
            for label in labels[r % len(labels) :] + labels[: r % len(labels)]:
                res = _drain(trees[label], envs[label], n, concurrency)
                results.setdefault(label, []).append(res)
                print(
                    f"round {r + 1} {label:>10}: " + json.dumps({k: round(v) for k, v in res.items()}),
                    flush=True,
                )
    finally:
        cluster.stop()
    print(f"\nN = {n}, concurrency {concurrency}, {args.rounds} rounds, medians (range of jobs/s):")
    for label, rows in results.items():
        rates = [r["jobs_per_s"] for r in rows]
        cpu = statistics.median(r["cpu_us_per_job"] for r in rows)
        worker = statistics.median(r["worker_cpu_us_per_job"] for r in rows)
        print(
            f"{label:>10}: {statistics.median(rates):6.0f} jobs/s ({min(rates):.0f}-{max(rates):.0f}), "
            f"CPU {cpu:.0f} us/job, of which the worker {worker:.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
