"""The health of the job system as a load balancer, a Kubernetes probe or an operator sees it.

`site_health()` answers for the whole cluster (the JSON health view): can the database be reached, which live
workers serve each queue, how long the oldest due job has waited, and, when the site runs on Temporal, whether
Temporal answers and its task queue has a live worker. `worker_alive()` answers for one worker (the liveness
probe `runjobworker --check`): is it still heartbeating.

A probe must answer even when what it probes is broken, so every failure is reported in the result, never
raised.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connection

from ..conf import env_setting, setting
from ..runners.base import UnservedQueue
from ..runners.factory import JobRunnerFactory
from ..states import RunnerType
from . import queues

logger = logging.getLogger("jobscheduler.monitoring")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueHealth:
    name: str
    waiting: int
    running: int
    oldest_waiting_seconds: float
    live_workers: int

    @property
    def problems(self) -> list[str]:
        found = []
        if self.waiting and not self.live_workers:
            found.append(f"queue {self.name}: {self.waiting} job(s) waiting and no live worker serves it")
        limit = float(setting("HEALTH_MAX_WAIT_SECONDS"))
        if self.oldest_waiting_seconds > limit:
            found.append(
                f"queue {self.name}: oldest waiting job has waited {self.oldest_waiting_seconds:.0f}s "
                f"(HEALTH_MAX_WAIT_SECONDS is {limit:g})"
            )
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class TemporalHealth:
    reachable: bool
    task_queue: str
    #: Temporal workers heartbeating in the workers table (for information: Temporal's pollers decide).
    live_workers: int
    #: Task queues no worker polls, as Temporal itself reports them (the runner's `unserved_queues()`).
    unserved: tuple[UnservedQueue, ...] = ()

    @property
    def problems(self) -> list[str]:
        if not self.reachable:
            return [f"Temporal at {env_setting('TEMPORAL_ADDRESS')} does not answer"]
        return [queue.message for queue in self.unserved]


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteHealth:
    database: bool
    database_error: str | None = None
    queues: tuple[QueueHealth, ...] = ()
    #: Live workers by id, per backend.
    workers: dict[str, list[str]] = field(default_factory=dict)
    temporal: TemporalHealth | None = None

    @property
    def problems(self) -> list[str]:
        if not self.database:
            return [f"database unreachable: {self.database_error}"]
        found = [p for q in self.queues for p in q.problems]
        if self.temporal is not None:
            found += self.temporal.problems
        return found

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "database": {"reachable": self.database, "error": self.database_error},
            "workers": self.workers,
            "queues": [
                {
                    "name": q.name,
                    "waiting": q.waiting,
                    "running": q.running,
                    "oldest_waiting_seconds": round(q.oldest_waiting_seconds, 3),
                    "live_workers": q.live_workers,
                }
                for q in self.queues
            ],
            "temporal": None
            if self.temporal is None
            else {
                "reachable": self.temporal.reachable,
                "task_queue": self.temporal.task_queue,
                "live_workers": self.temporal.live_workers,
                "polled": self.temporal.reachable and not self.temporal.unserved,
            },
        }


def database_error() -> str | None:
    """None when a round trip to the database works, else why not (a broken connection is dropped so the
    next request reconnects)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        connection.close_if_unusable_or_obsolete()
        return str(exc).strip() or type(exc).__name__
    return None


def site_health() -> SiteHealth:
    error = database_error()
    if error is not None:
        return SiteHealth(database=False, database_error=error)
    workers = queues.live_workers()
    pgboss_workers = [w for w in workers if w.backend == RunnerType.PGBOSS]
    queue_health = tuple(
        QueueHealth(
            name=q.name,
            waiting=q.waiting,
            running=q.running,
            oldest_waiting_seconds=q.oldest_waiting_seconds,
            live_workers=sum(1 for w in pgboss_workers if w.serves(q.name)),
        )
        for q in queues.pgboss_job_names()
    )
    by_backend: dict[str, list[str]] = {str(r): [] for r in RunnerType}
    for worker in workers:
        by_backend[str(worker.backend)].append(worker.id)
    temporal = None
    if str(env_setting("JOB_RUNNER_TYPE")).strip().lower() == RunnerType.TEMPORAL:
        reachable, unserved = _temporal_state()
        temporal = TemporalHealth(
            reachable=reachable,
            task_queue=str(env_setting("TEMPORAL_JOB_TASK_QUEUE")),
            live_workers=len(by_backend[RunnerType.TEMPORAL]),
            unserved=unserved,
        )
    return SiteHealth(database=True, queues=queue_health, workers=by_backend, temporal=temporal)


def _temporal_state() -> tuple[bool, tuple[UnservedQueue, ...]]:
    """Whether Temporal answers, and its task queues no worker polls (Temporal's own pollers, through the
    runner's `unserved_queues()`). A runner that is not Temporal's (the factory's pgboss fallback) means an
    unreachable Temporal too."""
    try:
        runner = JobRunnerFactory.for_runner_type(RunnerType.TEMPORAL)
        if runner.runner_type != RunnerType.TEMPORAL or not runner.is_reachable():
            return False, ()
        return True, tuple(q for q in runner.unserved_queues() if q.runner_type == RunnerType.TEMPORAL)
    except Exception as exc:  # a runner that cannot be built is an unreachable Temporal, reported not raised
        logger.warning("Temporal runner unavailable: %s", exc, extra={"action": "health_temporal_failed"})
        return False, ()


def worker_alive(worker_id: str | None = None) -> tuple[bool, str]:
    """Whether a worker heartbeats: the one named, else any worker of this host (the pod a probe runs in).
    Returns the verdict and the line that explains it."""
    error = database_error()
    if error is not None:
        return False, f"database unreachable: {error}"
    host = socket.gethostname()
    live = [w for w in queues.live_workers() if (w.id == worker_id if worker_id else w.host == host)]
    if not live:
        target = f"worker {worker_id}" if worker_id else f"any worker on host {host}"
        return False, (
            f"no heartbeat from {target} in the last {float(setting('WORKER_EXPIRY_SECONDS')):g}s "
            "(WORKER_EXPIRY_SECONDS)"
        )
    return True, f"alive: {', '.join(w.id for w in live)}"
