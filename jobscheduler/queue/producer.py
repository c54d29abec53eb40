"""The worker's producer: when to claim, how many jobs, and the claim itself.

It keeps what decides the next claim: whether more jobs may be ready (a full batch last time, or a NOTIFY),
when the poll backstop is due, and when this worker's own retries become ready. The claim's parameters are
built in one place (`claim_params`), so a new filter of what a worker serves is one edit here and one in
`sql.CLAIM`.
"""

from __future__ import annotations

import heapq
import threading

from ..telemetry import metrics
from . import sql
from .connection import WorkerConnection
from .execution import Attempt

#: A retry's wake-up comes this much after its backoff, so that its row is ready by the database clock too.
RETRY_WAKE_SLACK_SECONDS = 0.005


def claim_capacity(*, concurrency: int, running: int, unrecorded: int) -> int:
    """How many jobs a claim may take now (none when the result is zero or less).

    Claims may run one batch ahead of recording, no more: the database claims and records at the same time, so
    up to `concurrency` outcomes waiting to be recorded cost nothing; beyond that, every waiting outcome takes a
    slot, and claiming waits for recording instead of piling up outcomes (memory, and ever larger record
    statements).
    """
    return concurrency - running - max(0, unrecorded - concurrency)


class Producer:
    def __init__(
        self,
        *,
        worker_id: str,
        lease_seconds: float,
        job_names: list[str] | None,
        batch_size: int,
        poll_seconds: float,
    ) -> None:
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.job_names = job_names
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        #: A NOTIFY arrived, or the last claim came back full: claim again without waiting for the poll.
        self.maybe_ready = True
        self.next_poll = 0.0
        self.claims = 0
        self.claimed = 0
        self._lock = threading.Lock()  # retries are noted by the completer's thread
        self._retry_wakes: list[float] = []  # heap of monotonic times our own retries become ready

    def claim_params(self, limit: int) -> dict:
        return {
            "worker_id": self.worker_id,
            "lease_seconds": self.lease_seconds,
            "names": self.job_names,
            "limit": limit,
        }

    def wants_claim(self, now: float, free: int) -> bool:
        """Claim when a slot is free and jobs may be ready: a hint, one of our retries due, or the poll."""
        if free <= 0:
            return False
        with self._lock:
            retry_due = bool(self._retry_wakes and now >= self._retry_wakes[0])
        return self.maybe_ready or retry_due or now >= self.next_poll

    def claim(self, db: WorkerConnection, free: int, now: float) -> list[Attempt]:
        """Claim up to `free` jobs (at most a batch) in one statement; raises what the connection raises."""
        limit = min(free, self.batch_size)
        rows = db.fetch(sql.CLAIM, self.claim_params(limit))
        self.claims += 1
        self.claimed += len(rows)
        self.next_poll = now + self.poll_seconds
        with self._lock:
            while self._retry_wakes and self._retry_wakes[0] <= now:
                heapq.heappop(self._retry_wakes)
        self.maybe_ready = len(rows) == limit
        for _job_id, tenant, name, _attempt, _max, _token, _data, lag, *_trace in rows:
            metrics.observe_start(queue=name, job_type=name, tenant=tenant, lag_seconds=lag)
        return [
            Attempt(
                job_id=job_id,
                tenant=tenant,
                name=name,
                attempt=attempt_no,
                max_attempts=max_attempts,
                token=token,
                data=data,
                started=now,
                trace={"traceparent": traceparent, "tracestate": tracestate},
            )
            for job_id, tenant, name, attempt_no, max_attempts, token, data, _lag, traceparent, tracestate in rows
        ]

    def note_ready(self) -> None:
        self.maybe_ready = True

    def note_retry(self, delay_ms: float, now: float) -> None:
        """One of our attempts was recorded as a retry: claim again when its backoff is over."""
        with self._lock:
            heapq.heappush(self._retry_wakes, now + delay_ms / 1000.0 + RETRY_WAKE_SLACK_SECONDS)

    @property
    def waiting_retry(self) -> bool:
        """A retry of ours is not ready yet (a burst worker stays for it)."""
        with self._lock:
            return bool(self._retry_wakes)

    def next_wake(self) -> float:
        """When the next claim is due by the clock: the poll, or our next retry if sooner."""
        with self._lock:
            return min(self.next_poll, self._retry_wakes[0]) if self._retry_wakes else self.next_poll
