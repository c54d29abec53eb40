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

import math

import psycopg

from ..queues import RATE_BUCKETS
from . import sql


class Claimer:
    """Claims for one worker: the job names and queues it serves are fixed for its life."""

    def __init__(
        self,
        *,
        worker_id: str,
        lease_seconds: float,
        job_names: list[str] | None = None,
        queues: list[str] | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.job_names = job_names
        self.queues = queues

    def claim(self, conn: psycopg.Connection, limit: int) -> tuple[list[tuple], float | None]:
        """Lease up to `limit` ready jobs to this worker: the rows `sql.CLAIM` returns, and in how many seconds a
        rate-limited queue it serves, out of starts now, may start a job again (None: none is waiting so)."""
        params = {
            "worker_id": self.worker_id,
            "lease_seconds": self.lease_seconds,
            "names": self.job_names,
            "queues": self.queues,
            "limit": limit,
        }
        with conn.pipeline(), conn.transaction():
            conn.execute(sql.CLAIM_BEGIN, params)
            claimed = conn.execute(sql.CLAIM, params)
            windows = conn.execute(sql.CLAIM_RATE_WINDOWS)
        return claimed.fetchall(), rate_wait(windows.fetchall())


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
