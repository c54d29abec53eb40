"""The Temporal worker's queues: one temporalio Worker per served queue, each on the queue's task queue.

Temporal applies a queue's rate limit itself (`max_task_queue_activities_per_second`, enforced by the server
for the task queue across all workers), and a worker's own slots per queue (`max_concurrent_activities`). It
has no pause and no limit on running jobs across workers; so every POLL_INTERVAL_SECONDS this worker reads the
queues' live settings: a paused queue's Worker is shut down (running attempts get the shutdown timeout to
finish; nothing new starts here), a resumed one started again, and one whose rate limit changed restarted with
the new rate.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from .. import queues
from ..conf import setting
from ..registry import JobHandlerRegistry
from .activities import JobActivities
from .graph import JobGraphWorkflow
from .task_queues import task_queue_for
from .workflow import GenericJobWorkflow

logger = logging.getLogger("jobscheduler.temporal")


def default_served_queues() -> dict[str, int | None]:
    """Without `--queues`: the default queue, every queue a handler names, every configured one and every one
    settings.TASKS declares for our task backend (Temporal cannot list the task queues that have work)."""
    names = {
        queues.DEFAULT_QUEUE,
        *JobHandlerRegistry.queue_names(),
        *queues.configured_queues(),
        *queues.task_api_queues(),
    }
    return dict.fromkeys(sorted(names))


def _live_states(names: list[str]) -> dict[str, queues.QueueState]:
    return {name: queues.get_queue(name) for name in names}


@dataclass
class _Running:
    worker: Worker
    task: asyncio.Task
    rate: float | None


class QueueWorkers:
    def __init__(
        self,
        client: Client,
        activities: JobActivities,
        *,
        base_task_queue: str,
        served: dict[str, int | None],
        concurrency: int,
        shutdown_timeout: float,
    ) -> None:
        self.client = client
        self.activities = activities
        self.base_task_queue = base_task_queue
        self.served = served
        self.concurrency = concurrency
        self.shutdown_timeout = shutdown_timeout
        self._running: dict[str, _Running] = {}
        self._stopping: dict[str, asyncio.Task] = {}

    def slots(self, queue: str) -> int:
        return self.served[queue] or self.concurrency

    @property
    def total_slots(self) -> int:
        return sum(self.slots(q) for q in self.served)

    async def refresh(self) -> None:
        """Bring each queue's Worker in line with the queue's live settings; a crashed Worker ends the worker."""
        for running in self._running.values():
            if running.task.done() and running.task.exception() is not None:
                raise running.task.exception()
        states = await self.activities.db(_live_states, list(self.served))
        for name, state in states.items():
            await self._apply(name, state)

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(float(setting("POLL_INTERVAL_SECONDS")))
            await self.refresh()

    async def close(self) -> None:
        for name in list(self._running):
            self._stop(name)
        if self._stopping:
            await asyncio.gather(*self._stopping.values(), return_exceptions=True)

    async def _apply(self, name: str, state: queues.QueueState) -> None:
        rate = state.rate_limit.starts / state.rate_limit.per_seconds if state.rate_limit else None
        running = self._running.get(name)
        if state.paused:
            if running is not None:
                logger.info("Queue %s paused: its worker stops", name, extra={"action": "queue_paused"})
                self._stop(name)
            return
        if running is not None and running.rate == rate:
            return
        if running is not None:
            self._stop(name)
        previous = self._stopping.pop(name, None)
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        worker = Worker(
            self.client,
            task_queue=task_queue_for(self.base_task_queue, name),
            workflows=[GenericJobWorkflow, JobGraphWorkflow],
            activities=self.activities.all(),
            max_concurrent_activities=self.slots(name),
            max_task_queue_activities_per_second=rate,
            graceful_shutdown_timeout=timedelta(seconds=self.shutdown_timeout),
        )
        self._running[name] = _Running(worker, asyncio.create_task(worker.run()), rate)

    def _stop(self, name: str) -> None:
        running = self._running.pop(name)

        async def stop() -> None:
            await running.worker.shutdown()
            await asyncio.gather(running.task, return_exceptions=True)

        self._stopping[name] = asyncio.create_task(stop())
