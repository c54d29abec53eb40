"""A worker's claim: one transaction and one round trip that starts a batch of jobs, within each queue's settings.

READ COMMITTED gives every statement its own snapshot, taken when the statement starts. A claim must see every
change to the queues' settings that has returned, and a claim of a limited queue must count the jobs every
other claim of that queue leased. So it first takes its locks (`sql.CLAIM_BEGIN`: the settings barrier, and the
rows of the limited queues it may claim from) and only then runs the claim statement (`sql.CLAIM`), whose
snapshot is therefore taken once the locks are held. Both statements and the commit go in one pipeline: one
round trip, as a single statement would be. A claim of unlimited queues locks no row.
"""

from __future__ import annotations

import psycopg

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

    def claim(self, conn: psycopg.Connection, limit: int) -> list[tuple]:
        """Lease up to `limit` ready jobs to this worker; the rows `sql.CLAIM` returns."""
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
        return claimed.fetchall()
