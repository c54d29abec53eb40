"""procrastinate 3.10 (psycopg 3 pool, LISTEN/NOTIFY + FOR UPDATE SKIP LOCKED): the bench phases.

Enqueue: `await noop.defer_async()` one at a time; bulk: `noop.batch_defer_async(*kwargs)` per chunk. Worker:
`procrastinate worker --concurrency=10` (one process, asyncio), defaults otherwise (LISTEN/NOTIFY on, finished
jobs kept). Done: `status = 'succeeded'`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from bench import measure, procs
from bench.peers import harness

PEER = "procrastinate"
DB = "bench_procrastinate"
CONCURRENCY = int(os.environ.get("BENCH_PROCR_CONCURRENCY", "10"))
WORKER = [
    sys.executable,
    "-m",
    "procrastinate",
    "--app=bench.peers.procrastinate_app.app",
    "--log-level=warning",
    "worker",
    f"--concurrency={CONCURRENCY}",
]


async def enqueue_single(n: int) -> dict[str, Any]:
    from bench.peers.procrastinate_app import app, noop

    async with app.open_async():
        return await measure.atimed_enqueue(n, noop.defer_async, "noop.defer_async()")


async def enqueue_bulk(n: int) -> dict[str, Any]:
    from bench.peers.procrastinate_app import app, noop

    async with app.open_async():
        t = time.perf_counter()
        for start in range(0, n, measure.BULK_CHUNK):
            await noop.batch_defer_async(*([{}] * min(measure.BULK_CHUNK, n - start)))
        dt = time.perf_counter() - t
    return {
        "n": n,
        "seconds": dt,
        "jobs_per_s": n / dt,
        "api": f"noop.batch_defer_async() x{measure.BULK_CHUNK}",
    }


def drain(n: int) -> dict[str, Any]:
    poller = harness.Poller(DB)
    try:
        done = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        return harness.drain(lambda: poller.scalar(done), n, WORKER, PEER)
    finally:
        poller.close()


async def latency() -> dict[str, Any]:
    from bench.peers.procrastinate_app import app, probe

    path = harness.latency_file(PEER)
    worker = harness.spawn(WORKER, f"{PEER}-latency", {"BENCH_LAT_FILE": str(path)})
    try:
        async with app.open_async():
            return await measure.aprobe_latency(lambda: probe.defer_async(t0=time.time()), path)
    finally:
        procs.stop(worker)


def setup() -> None:
    from bench.peers.procrastinate_app import app

    harness.recreate_db(DB)

    async def schema() -> None:
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    asyncio.run(schema())


def main() -> None:
    res = harness.new_result(PEER, "procrastinate", measure.N)
    res["settings"] = {
        "worker": " ".join(WORKER[3:]),
        "concurrency_short": f"1 proc, asyncio, concurrency {CONCURRENCY}",
        "driver": f"psycopg {harness.pkg_version('psycopg')} (PsycopgConnector pool)",
    }
    harness.run(
        res,
        measure.N,
        harness.Workloads(
            setup=setup,
            clean=lambda: harness.execute(DB, "TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE"),
            single=lambda n: asyncio.run(enqueue_single(n)),
            bulk=lambda n: asyncio.run(enqueue_bulk(n)),
            drain=drain,
            latency=lambda: asyncio.run(latency()),
        ),
    )
