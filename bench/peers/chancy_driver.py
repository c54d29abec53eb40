"""chancy 0.26 (psycopg 3 pool, LISTEN/NOTIFY + FOR UPDATE SKIP LOCKED): the bench phases.

Enqueue: `await chancy.push(noop)` one at a time; bulk: `chancy.push_many(jobs, batch_size=1000)` (one
transaction per batch). Worker: `chancy --app bench.peers.chancy_app.chancy worker start`, Worker() defaults
(finished jobs are written back once a second, so the count the poller sees trails the handlers by up to 1 s;
each trial also records the handler-side timeline from `completed_at`, in the JSON only). Done: `state =
'succeeded'`.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from bench import measure, procs
from bench.peers import harness

PEER = "chancy"
DB = "bench_chancy"
WORKER = [
    str(Path(sys.executable).parent / "chancy"),
    "--app",
    "bench.peers.chancy_app.chancy",
    "worker",
    "start",
]
DONE_SQL = "SELECT count(*) FROM chancy_jobs WHERE state = 'succeeded'"
TIMELINE_SQL = """
SELECT extract(epoch FROM min(completed_at)), extract(epoch FROM max(completed_at)),
       extract(epoch FROM percentile_disc(0.1) WITHIN GROUP (ORDER BY completed_at)),
       extract(epoch FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY completed_at))
FROM chancy_jobs WHERE state = 'succeeded'
"""


async def enqueue_single(n: int) -> dict[str, Any]:
    from bench.peers.chancy_app import chancy, noop

    async with chancy:
        return await measure.atimed_enqueue(n, lambda: chancy.push(noop), "await chancy.push(noop)")


async def enqueue_bulk(n: int) -> dict[str, Any]:
    from bench.peers.chancy_app import chancy, noop

    async with chancy:
        t = time.perf_counter()
        async for _refs in chancy.push_many([noop.job] * n, batch_size=measure.BULK_CHUNK):
            pass
        dt = time.perf_counter() - t
    return {
        "n": n,
        "seconds": dt,
        "jobs_per_s": n / dt,
        "api": f"chancy.push_many(batch_size={measure.BULK_CHUNK})",
    }


def drain(n: int) -> dict[str, Any]:
    poller = harness.Poller(DB)
    try:
        wall_spawn = time.time()
        out = harness.drain(lambda: poller.scalar(DONE_SQL), n, WORKER, PEER)
        if not out.get("timeout"):
            first, last, t10, t90 = (float(x) for x in poller.conn.execute(TIMELINE_SQL).fetchone())
            out["from_completed_at"] = {
                "first_completed_after_s": first - wall_spawn,
                "jobs_per_s": n / (last - wall_spawn),
                "steady_jobs_per_s": 0.8 * n / (t90 - t10) if t90 > t10 else None,
            }
        return out
    finally:
        poller.close()


async def latency() -> dict[str, Any]:
    from bench.peers.chancy_app import chancy, probe

    path = harness.latency_file(PEER)
    worker = harness.spawn(WORKER, f"{PEER}-latency", {"BENCH_LAT_FILE": str(path)})
    try:
        async with chancy:
            return await measure.aprobe_latency(
                lambda: chancy.push(probe.job.with_kwargs(t0=time.time())), path
            )
    finally:
        procs.stop(worker)


def setup() -> None:
    from bench.peers.chancy_app import QUEUE, chancy

    harness.recreate_db(DB)

    async def schema() -> None:
        async with chancy:
            await chancy.migrate()
            await chancy.declare(QUEUE, upsert=True)

    asyncio.run(schema())


def main() -> None:
    from bench.peers.chancy_app import QUEUE

    res = harness.new_result(PEER, "chancy", measure.N)
    res["settings"] = {
        "worker": " ".join(WORKER[1:]) + " (Worker() defaults: finished jobs written back every 1 s)",
        "concurrency_short": f"1 proc, asyncio, concurrency {QUEUE.concurrency}"
        + ("" if QUEUE.eager_polling else ", eager_polling off"),
        "queue": QUEUE.pack(),
        "driver": f"psycopg {harness.pkg_version('psycopg')} (AsyncConnectionPool)",
    }
    harness.run(
        res,
        measure.N,
        harness.Workloads(
            setup=setup,
            clean=lambda: harness.execute(DB, "TRUNCATE chancy_jobs"),
            single=lambda n: asyncio.run(enqueue_single(n)),
            bulk=lambda n: asyncio.run(enqueue_bulk(n)),
            drain=drain,
            latency=lambda: asyncio.run(latency()),
        ),
    )
