"""pgqueuer's side of the bench: the consumer factory its worker loads, and that worker's entry point.

`python -m bench.peers.pgqueuer_app BATCH_SIZE` calls `pgqueuer.run()`, the supervisor behind `pgq run`, with the
CLI's defaults and uvloop as the CLI uses it; `pgq run` itself is not used because in pgqueuer 1.6.0 with the
typer/click versions pip resolves it fails before starting (its log level reaches the logger as a str). The
factory must be an async context manager in 1.6.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

from bench import config, measure

DB = "bench_pgqueuer"


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    connection = await asyncpg.connect(config.pg_dsn(DB))
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("noop")
    async def noop(job: Job) -> None:
        return None

    @pgq.entrypoint("probe")
    async def probe(job: Job) -> None:
        measure.record_start(float(job.payload.decode()))

    try:
        yield pgq
    finally:
        await connection.close()


if __name__ == "__main__":
    import sys
    from datetime import timedelta

    import pgqueuer
    import uvloop
    from pgqueuer.core import logconfig
    from pgqueuer.domain import types

    logconfig.setup_fancy_logger(logconfig.LogLevel.WARNING)
    uvloop.run(
        pgqueuer.run(
            "bench.peers.pgqueuer_app:main",
            dequeue_timeout=timedelta(seconds=30),
            batch_size=int(sys.argv[1]),
            mode=types.QueueExecutionMode.continuous,
            max_concurrent_tasks=None,
            heartbeat_timeout=timedelta(seconds=30),
        )
    )
