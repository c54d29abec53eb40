"""The Temporal worker: GenericJobWorkflow, JobGraphWorkflow and their activities on the task queue of each queue
it serves.

`run_temporal_worker` is what `runjobworker --backend temporal` calls: it blocks until SIGTERM/SIGINT, then
stops polling, lets running attempts finish for `shutdown_timeout` seconds (Temporal then cancels them and
retries them elsewhere), and closes its database connections. `running_worker` is the same worker as an async
context manager, for embedding and tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO

from temporalio.client import Client

from ..conf import env_setting, setting
from ..exceptions import RunnerUnavailable
from ..registry import JobHandlerRegistry
from . import records
from .activities import JobActivities
from .client import connect_client
from .queue_workers import QueueWorkers, default_served_queues
from .task_queues import task_queue_for

logger = logging.getLogger("jobscheduler.temporal")


@asynccontextmanager
async def running_worker(
    client: Client,
    *,
    concurrency: int,
    shutdown_timeout: float,
    task_queue: str | None = None,
    worker_id: str | None = None,
    queues: dict[str, int | None] | None = None,
) -> AsyncIterator[QueueWorkers]:
    """A started worker for `queues` (name -> its own slots, None: `concurrency`; default: see
    `default_served_queues`), listed in the workers table while it runs; leaving the block shuts it down
    gracefully and closes its connections."""
    worker_id = worker_id or f"temporal:{socket.gethostname()}:{os.getpid()}"
    served = queues or default_served_queues()
    slots = sum(n or concurrency for n in served.values())
    activities = JobActivities(concurrency=slots, worker_id=worker_id)
    workers = QueueWorkers(
        client,
        activities,
        base_task_queue=task_queue or env_setting("TEMPORAL_JOB_TASK_QUEUE"),
        served=served,
        concurrency=concurrency,
        shutdown_timeout=shutdown_timeout,
    )
    await activities.db(
        records.register_worker,
        worker_id,
        socket.gethostname(),
        os.getpid(),
        slots,
        JobHandlerRegistry.names(),
        sorted(served) if queues else [],
    )
    beat = asyncio.create_task(_heartbeat(activities))
    watch = None
    try:
        await workers.refresh()
        watch = asyncio.create_task(workers.watch())
        yield workers
    finally:
        beat.cancel()
        if watch is not None:
            watch.cancel()
        await workers.close()
        await activities.db(records.unregister_worker, worker_id)
        await asyncio.to_thread(activities.close)


async def _heartbeat(activities: JobActivities) -> None:
    """Keep the workers-table row fresh (rows silent for WORKER_EXPIRY_SECONDS are dropped). While the database
    is away the heartbeat says so once, not at every beat."""
    failing = False
    while True:
        await asyncio.sleep(float(setting("HEARTBEAT_SECONDS")))
        try:
            await activities.db(records.heartbeat_worker, activities.worker_id, sorted(activities.running))
        except Exception:
            if not failing:
                logger.warning("Worker heartbeat failed (quiet until it succeeds again)", exc_info=True)
            failing = True
            continue
        if failing:
            logger.warning("Worker heartbeat works again")
        failing = False


def run_temporal_worker(
    *,
    concurrency: int,
    job_names: list[str] | None,
    shutdown_timeout: float,
    stdout: TextIO,
    queues: dict[str, int | None] | None = None,
) -> int:
    """Run a worker until SIGTERM/SIGINT; the exit code is 0, or 1 when Temporal cannot be reached.

    Temporal routes work by task queue, not by job name, so every worker on one queue must have every handler
    registered; `job_names` is checked against the registry (JobHandlerNotFound) and reported. Give a pool of
    workers with other handlers its own TEMPORAL_JOB_TASK_QUEUE.
    """
    names = job_names or JobHandlerRegistry.names()
    for name in names:
        JobHandlerRegistry.get(name)
    try:
        return asyncio.run(_serve(concurrency, names, shutdown_timeout, stdout, queues))
    except RunnerUnavailable as exc:
        stdout.write(f"{exc}\n")
        return 1


async def _serve(
    concurrency: int,
    names: list[str],
    shutdown_timeout: float,
    stdout: TextIO,
    queues: dict[str, int | None] | None,
) -> int:
    client = await connect_client()
    stop = asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    base = env_setting("TEMPORAL_JOB_TASK_QUEUE")
    async with running_worker(
        client, concurrency=concurrency, shutdown_timeout=shutdown_timeout, queues=queues
    ) as workers:
        served = ", ".join(
            f"{name} ({task_queue_for(base, name)!r}, {workers.slots(name)} slots)" for name in workers.served
        )
        stdout.write(
            f"Temporal worker on {env_setting('TEMPORAL_ADDRESS')} queues {served}, "
            f"jobs: {', '.join(names) or '(none registered)'}\n"
        )
        stdout.flush()
        await stop.wait()
        stdout.write(f"Shutting down (waiting up to {shutdown_timeout:g}s for running jobs)\n")
        stdout.flush()
    return 0
