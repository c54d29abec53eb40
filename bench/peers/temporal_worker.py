"""The bare-Temporal peer's worker process: one temporalio Worker with SDK defaults until SIGTERM.

It leaves with os._exit(0) after the worker has shut down gracefully: the SDK's core threads can abort the
interpreter's finalisation, which would only add noise to the logs.
"""

from __future__ import annotations

import asyncio
import os
import signal

from temporalio.client import Client
from temporalio.worker import Worker

from bench import config
from bench.peers.temporal_activities import noop_activity, probe_activity
from bench.peers.temporal_workflows import TASK_QUEUE, NoopWorkflow, ProbeWorkflow


async def main() -> None:
    client = await Client.connect(config.temporal_address())
    worker = Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[NoopWorkflow, ProbeWorkflow],
        activities=[noop_activity, probe_activity],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)
