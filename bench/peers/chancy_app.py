"""chancy's side of the bench: the Chancy app, its queue and two jobs, for the driver and for `chancy worker`.

The queue lives in the database: the driver declares QUEUE (upsert) at set-up and the worker reads it. It is
named "default" because Worker.start() declares Queue("default") itself (without upsert, so ours stays); a
queue of another name would leave that one (ProcessExecutor, 5 s polling) running beside ours.
"""

from __future__ import annotations

import logging
import os

from chancy import Chancy, Queue, job

from bench import config, measure

DB = "bench_chancy"
CONCURRENCY = int(os.environ.get("BENCH_CHANCY_CONCURRENCY", "100"))

QUEUE = Queue(
    name="default",
    # Async no-op handlers in the worker's event loop, like the procrastinate and pgqueuer workers; the default
    # ProcessExecutor would add a process-pool hop per job.
    executor=Chancy.Executor.Async,
    # 100 is what the AsyncExecutor takes when the queue names none; our worker also drains at 100.
    concurrency=CONCURRENCY,
    # The minimum the INTEGER column allows; with LISTEN/NOTIFY (chancy's default) a push wakes the queue at
    # once and the interval is only the fallback.
    polling_interval=1,
    # Fetch again as soon as a slot frees (documented for queues with work always waiting); without it a
    # backlog drains at about `concurrency` jobs per polling_interval.
    eager_polling=os.environ.get("BENCH_CHANCY_EAGER", "1") != "0",
)

# chancy's logger logs one INFO line per job by default; every other worker here logs at WARNING.
log = logging.getLogger("chancy")
log.setLevel(logging.WARNING)
if not log.handlers:
    log.addHandler(logging.StreamHandler())

chancy = Chancy(config.pg_dsn(DB), log=log)


@job()
async def noop() -> None:
    return None


@job()
async def probe(*, t0: float) -> None:
    measure.record_start(t0)
