"""The worker's heartbeat: extends the leases it holds and passes cancel requests on to running handlers.

Leases must be extended on time whatever the worker's loop is doing: a slow claim on a loaded database must not
make a live worker look dead (its jobs would be rescued and run twice). So the heartbeat runs on a thread and a
connection of its own. A lease is held from claim until the outcome is recorded: running attempts (executor)
and outcomes not recorded yet (completer), read in that order (see `executor`).
"""

from __future__ import annotations

import json
import uuid

import psycopg

from . import sql
from .completer import Completer
from .executor import Executor
from .periodic import PeriodicThread


class Heartbeat(PeriodicThread):
    def __init__(
        self,
        *,
        worker_id: str,
        lease_seconds: float,
        interval: float,
        executor: Executor,
        completer: Completer,
    ) -> None:
        super().__init__("heartbeat", self.beat, interval, first_delay=interval)
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.executor = executor
        self.completer = completer

    def beat(self, conn: psycopg.Connection) -> None:
        """Extend every lease this worker holds and tell handlers whose job was cancelled (or taken over by
        another worker) to stop."""
        running = self.executor.running()
        held = list(dict.fromkeys(running + self.completer.held()))  # an attempt is briefly in both
        conn.execute(
            sql.WORKER_HEARTBEAT,
            {"id": self.worker_id, "running": json.dumps([str(a.job_id) for a in running])},
        )
        if not held:
            return
        rows = conn.execute(
            sql.HEARTBEAT,
            {
                "lease_seconds": self.lease_seconds,
                "ids": [a.job_id for a in held],
                "tokens": [a.token for a in held],
            },
        ).fetchall()
        alive = {job_id: cancel for job_id, cancel in rows}
        for attempt in running:
            if attempt.ctx and (attempt.job_id not in alive or alive[attempt.job_id]):
                # Cancel requested, or rescued elsewhere (this attempt's outcome will be rejected): tell the
                # handler to stop early.
                attempt.ctx.mark_cancelled()

    def pass_on_cancel(self, job_id: str) -> None:
        """A cancel NOTIFY (the payload is a job id): tell the handler at once rather than at the next beat."""
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            return
        attempt = self.executor.find(key)
        if attempt and attempt.ctx:
            attempt.ctx.mark_cancelled()
