"""`@task` functions the task-API tests enqueue, run by workers that find them by module path.

Task signals are appended, as JSON lines, to the file named by TASK_SIGNALS_LOG (when set), so a test can read
what a worker subprocess sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from django.dispatch import receiver

from jobscheduler import current_job
from jobscheduler.tasks import task_enqueued, task_finished, task_started

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


class PaymentDeclined(Exception):
    """A task's own error: its full class path must reach TaskResult.errors."""


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def always_fails(reason: str) -> None:
    raise PaymentDeclined(reason)


@task(takes_context=True)
def flaky(context, succeed_on: int) -> dict:
    """Fails until attempt `succeed_on`; returns what the context said about the attempt."""
    if context.attempt < succeed_on:
        raise ConnectionError(f"attempt {context.attempt} failed")
    return {
        "attempt": context.attempt,
        "job_attempt": current_job().attempt,
        "worker_ids": len(context.task_result.worker_ids),
        "errors": [e.exception_class_path for e in context.task_result.errors],
    }


@task
async def async_double(x: int) -> int:
    await asyncio.sleep(0.01)
    return 2 * x


@task(takes_context=True)
def slow_first_attempt(context) -> int:
    """The first attempt outlasts the backend's TIMEOUT_MS (in steps, so the worker's interrupt lands)."""
    if context.attempt == 1:
        for _ in range(100):
            time.sleep(0.1)
    return context.attempt


@task
def returns_a_set() -> set:
    return {1, 2}


@task
def note_order(label: str) -> str:
    return label


def plain_function(job_id: str, data: dict) -> None:
    """Not a task: a job of this path must fail, not run."""
    raise AssertionError("a plain function must never run as a task")


def _log(signal_name: str, task_result) -> None:
    path = os.environ.get("TASK_SIGNALS_LOG")
    if not path:
        return
    with open(path, "a") as log:
        line = {
            "signal": signal_name,
            "id": task_result.id,
            "status": str(task_result.status),
            "attempts": task_result.attempts,
            "errors": len(task_result.errors),
        }
        log.write(json.dumps(line) + "\n")


@receiver(task_enqueued)
def _on_enqueued(sender, task_result, **kwargs):
    _log("enqueued", task_result)


@receiver(task_started)
def _on_started(sender, task_result, **kwargs):
    _log("started", task_result)


@receiver(task_finished)
def _on_finished(sender, task_result, **kwargs):
    _log("finished", task_result)
