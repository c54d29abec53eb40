"""Job queues on Temporal: each queue is a Temporal task queue of its own, polled by the workers that serve it.

The default queue keeps TEMPORAL_JOB_TASK_QUEUE (so nothing changes for a site without named queues); queue
`emails` is `<TEMPORAL_JOB_TASK_QUEUE>.emails`. A workflow's activities run on its task queue, so a job runs
only on workers serving its queue, and a queue's rate limit can be Temporal's own task-queue rate limit.
"""

from __future__ import annotations

from ..queues import DEFAULT_QUEUE


def task_queue_for(base: str, queue: str) -> str:
    """The Temporal task queue of a job queue, given the site's TEMPORAL_JOB_TASK_QUEUE."""
    return base if queue == DEFAULT_QUEUE else f"{base}.{queue}"
