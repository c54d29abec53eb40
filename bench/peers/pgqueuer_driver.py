"""pgqueuer 1.6 (asyncpg, LISTEN/NOTIFY + FOR UPDATE SKIP LOCKED): the bench phases.

Enqueue: `Queries.enqueue("noop", None)` awaited one at a time on one asyncpg connection; bulk: the list form
`Queries.enqueue([...], [...], [...])` per chunk. Worker: one process, batch_size 10 (the CLI default), no
concurrency cap. Done: rows left in the `pgqueuer` table (finished jobs move to `pgqueuer_log`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import config, measure, procs
from bench.peers import harness

PEER = "pgqueuer"
DB = "bench_pgqueuer"
BATCH = int(os.environ.get("BENCH_PGQ_BATCH", "10"))
WORKER = [sys.executable, "-m", "bench.peers.pgqueuer_app", str(BATCH)]


async def _queries() -> tuple[Any, Any]:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(config.pg_dsn(DB))
    return conn, Queries(AsyncpgDriver(conn))


async def enqueue_single(n: int) -> dict[str, Any]:
    conn, q = await _queries()
    try:
        return await measure.atimed_enqueue(
            n, lambda: q.enqueue("noop", None), "Queries.enqueue('noop', None), one asyncpg connection"
        )
    finally:
        await conn.close()


async def enqueue_bulk(n: int) -> dict[str, Any]:
    conn, q = await _queries()
    try:
        t = time.perf_counter()
        for start in range(0, n, measure.BULK_CHUNK):
            k = min(measure.BULK_CHUNK, n - start)
            await q.enqueue(["noop"] * k, [None] * k, [0] * k)
        dt = time.perf_counter() - t
    finally:
        await conn.close()
    return {
        "n": n,
        "seconds": dt,
        "jobs_per_s": n / dt,
        "api": f"Queries.enqueue(lists) x{measure.BULK_CHUNK}",
    }


def drain(n: int) -> dict[str, Any]:
    poller = harness.Poller(DB)
    try:
        return harness.drain(lambda: n - poller.scalar("SELECT count(*) FROM pgqueuer"), n, WORKER, PEER)
    finally:
        poller.close()


async def latency() -> dict[str, Any]:
    path = harness.latency_file(PEER)
    worker = harness.spawn(WORKER, f"{PEER}-latency", {"BENCH_LAT_FILE": str(path)})
    conn, q = await _queries()
    try:
        return await measure.aprobe_latency(lambda: q.enqueue("probe", repr(time.time()).encode()), path)
    finally:
        await conn.close()
        procs.stop(worker)


def setup() -> None:
    harness.recreate_db(DB)
    pgq = Path(sys.executable).parent / "pgq"
    subprocess.run(
        [str(pgq), "--pg-dsn", config.pg_dsn(DB), "install"], check=True, stdout=subprocess.DEVNULL
    )


def clean() -> None:
    harness.execute(DB, "TRUNCATE pgqueuer, pgqueuer_log")


def main() -> None:
    res = harness.new_result(PEER, "pgqueuer", measure.N)
    res["settings"] = {
        "worker": f"pgqueuer.run('bench.peers.pgqueuer_app:main', batch_size={BATCH}) under uvloop (= pgq run)",
        "concurrency_short": f"1 proc, asyncio, batch_size {BATCH}",
        "driver": f"asyncpg {harness.pkg_version('asyncpg')}",
        "schema": "pgq install (defaults: logged tables)",
    }
    harness.run(
        res,
        measure.N,
        harness.Workloads(
            setup=setup,
            clean=clean,
            single=lambda n: asyncio.run(enqueue_single(n)),
            bulk=lambda n: asyncio.run(enqueue_bulk(n)),
            drain=drain,
            latency=lambda: asyncio.run(latency()),
        ),
    )
