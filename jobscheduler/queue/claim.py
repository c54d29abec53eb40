"""A worker's claim: one transaction and one round trip that starts a batch of jobs, within each queue's settings.

READ COMMITTED gives every statement its own snapshot, taken when the statement starts. A claim must see every
change to the queues' settings that has returned, and a claim of a limited queue must count the jobs every
other claim of that queue leased. So it first takes its locks (`sql.CLAIM_BEGIN`: the settings barrier, and the
rows of the limited queues it may claim from) and only then runs the claim statement (`sql.CLAIM`), whose
snapshot is therefore taken once the locks are held. A last statement reads the rate windows of the
rate-limited queues it locked, so the worker knows when such a queue can start a job again (nothing else would
wake it: no job ends, nothing is enqueued). The statements and the commit go in one pipeline: one round trip,
as a single statement would be. A claim of unlimited queues locks no row.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Iterable

import psycopg

from ..queues import RATE_BUCKETS
from . import sql


class Claimer:
    """Claims for one worker: the job names and queues it serves are fixed for its life.

    `queues`: the queues it serves and, for each, how many of its own slots that queue may use at most (None: no
    cap beyond the worker's concurrency); None serves every queue."""

    def __init__(
        self,
        *,
        worker_id: str,
        lease_seconds: float,
        job_names: list[str] | None = None,
        queues: dict[str, int | None] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.job_names = job_names
        self.queues = sorted(queues) if queues else None
        self.slots = {name: n for name, n in (queues or {}).items() if n is not None}
        self._queue_of: dict[uuid.UUID, str] = {}  # this worker's capped jobs, by id

    def claim(
        self, conn: psycopg.Connection, limit: int, running: Iterable[uuid.UUID] = ()
    ) -> tuple[list[tuple], float | None]:
        """Lease up to `limit` ready jobs to this worker (`running`: the ids of its jobs still running): the rows
        `sql.CLAIM` returns, less their queue, and in how many seconds a rate-limited queue it serves, out of
        starts now, may start a job again (None: none is waiting so)."""
        params = {
            "worker_id": self.worker_id,
            "lease_seconds": self.lease_seconds,
            "names": self.job_names,
            "queues": self.queues,
            "slots": json.dumps(self._free_slots(running)) if self.slots else None,
            "limit": limit,
        }
        with conn.pipeline(), conn.transaction():
            conn.execute(sql.CLAIM_BEGIN, params)
            claimed = conn.execute(sql.CLAIM, params)
            windows = conn.execute(sql.CLAIM_RATE_WINDOWS)
        rows = claimed.fetchall()
        for row in rows:
            if row[-1] in self.slots:
                self._queue_of[row[0]] = row[-1]
        return [row[:-1] for row in rows], rate_wait(windows.fetchall())

    def _free_slots(self, running: Iterable[uuid.UUID]) -> dict[str, int]:
        still = set(running)
        self._queue_of = {job_id: q for job_id, q in self._queue_of.items() if job_id in still}
        used = Counter(self._queue_of.values())
        return {name: max(0, n - used[name]) for name, n in self.slots.items()}


def rate_wait(windows: list[tuple]) -> float | None:
    """Seconds until the first of these full rate windows lets a job start (None: none is full).

    A start in bucket `b` counts until bucket `b + RATE_BUCKETS + 1` begins (see sql.CLAIM), so a full window
    frees a start when enough of its oldest buckets have left it."""
    waits = []
    for starts, period, window, now in windows:
        width = period / RATE_BUCKETS
        current = math.floor(now / width)
        counted = sorted((int(b), n) for b, n in window.items() if int(b) >= current - RATE_BUCKETS)
        total = sum(n for _, n in counted)
        for bucket, n in counted:
            if total < starts:
                break
            total -= n
            if total < starts:
                waits.append((bucket + RATE_BUCKETS + 1) * width - now)
    return max(0.0, min(waits)) if waits else None
