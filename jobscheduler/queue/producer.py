"""The worker's producer: when to claim, how many jobs, and the claim itself.

It keeps what decides the next claim: whether more jobs may be ready (a full batch last time, or a NOTIFY),
when the poll backstop is due, and when this worker's own retries, or a rate-limited queue's next start, become
ready. The claim's parameters are built in one place (`claim_params`), so a new filter of what a worker serves
is one edit here and one in `sql.CLAIM`.

A claim is one transaction and one round trip of three statements. READ COMMITTED gives every statement its own
snapshot, taken when the statement starts; a claim must see every change to the queues' settings that has
returned, and a claim of a limited queue must count the jobs every other claim of that queue leased. So it
first takes its locks (`sql.CLAIM_BEGIN`: the settings barrier, and the rows of the limited queues it may claim
from) and only then runs the claim statement (`sql.CLAIM`), whose snapshot is therefore taken once the locks are
held. The last statement reads the rate windows of the rate-limited queues it locked, so the worker knows when
such a queue can start a job again (nothing else would wake it: no job ends, nothing is enqueued). A claim of
unlimited queues locks no row.

Most sites limit and pause nothing, and the full claim statement makes them run its limit branches empty on
every claim. So CLAIM_BEGIN also says whether any queue the worker serves is limited or paused; while none is,
the worker claims with `sql.CLAIM_UNLIMITED` instead, two statements in all. That statement checks the same thing in its own snapshot and claims nothing if a queue has become
limited or paused meanwhile; the worker then claims at once with the full statement.
"""

from __future__ import annotations

import heapq
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable

from ..queues import RATE_BUCKETS
from ..telemetry import metrics
from . import sql
from .connection import WorkerConnection
from .execution import Attempt

#: A retry's wake-up comes this much after its backoff, so that its row is ready by the database clock too.
RETRY_WAKE_SLACK_SECONDS = 0.005


#: How many batches (of `concurrency` outcomes) claims may run ahead of recording at no cost.
RECORDING_LAG_BATCHES = 2


def claim_capacity(*, concurrency: int, running: int, unrecorded: int) -> int:
    """How many jobs a claim may take now (none when the result is zero or less).

    Claims may run RECORDING_LAG_BATCHES batches ahead of recording, no more. The database claims and records
    at the same time (two connections, two server processes), so outcomes waiting to be recorded cost nothing
    up to that point; beyond it, every waiting outcome takes a slot, and claiming waits for recording instead of
    piling up outcomes (memory, and ever larger record statements). With one batch, a drain of short jobs
    alternated: the claim of the next batch waited while the completer recorded the last one. Two batches let
    them overlap (`bench/drain_ab.py`, 20,000 no-op jobs at concurrency 100, medians of three A/B runs:
    9,097-9,211 against 10,010-10,079 jobs/s, docs/performance.md); four measured no better than two.
    """
    return concurrency - running - max(0, unrecorded - RECORDING_LAG_BATCHES * concurrency)


class Producer:
    def __init__(
        self,
        *,
        worker_id: str,
        lease_seconds: float,
        job_names: list[str] | None,
        batch_size: int,
        poll_seconds: float,
        queues: dict[str, int | None] | None = None,
        running: Callable[[], Iterable[Attempt]] = tuple,
    ) -> None:
        """`queues`: the queues this worker serves and, for each, how many of its own slots that queue may use
        at most (None: no cap beyond the worker's concurrency); None serves every queue. `running`: this
        worker's running attempts (for those caps)."""
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.job_names = job_names
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.queues = sorted(queues) if queues else None
        self.slots = {name: n for name, n in (queues or {}).items() if n is not None}
        self._running = running
        #: A NOTIFY arrived, or the last claim came back full: claim again without waiting for the poll.
        self.maybe_ready = True
        self.next_poll = 0.0
        self.claims = 0
        self.claimed = 0
        #: The last claim found no limited or paused queue among those this worker serves: claim with the
        #: statement that leaves limits out (sql.CLAIM_UNLIMITED, which checks that again itself).
        self.unlimited = False
        self._lock = threading.Lock()  # retries are noted by the completer's thread
        self._retry_wakes: list[float] = []  # heap of monotonic times our own retries become ready

    def claim_params(self, limit: int) -> dict:
        return {
            "worker_id": self.worker_id,
            "lease_seconds": self.lease_seconds,
            "names": self.job_names,
            "queues": self.queues,
            "slots": json.dumps(self._free_slots()) if self.slots else None,
            "limit": limit,
        }

    def _free_slots(self) -> dict[str, int]:
        """This worker's free slots of each queue it caps (`--queues emails:5`)."""
        used = Counter(attempt.queue for attempt in self._running())
        return {name: max(0, n - used[name]) for name, n in self.slots.items()}

    def wants_claim(self, now: float, free: int) -> bool:
        """Claim when a slot is free and jobs may be ready: a hint, one of our retries due, or the poll."""
        if free <= 0:
            return False
        with self._lock:
            retry_due = bool(self._retry_wakes and now >= self._retry_wakes[0])
        return self.maybe_ready or retry_due or now >= self.next_poll

    def claim(self, db: WorkerConnection, free: int, now: float) -> list[Attempt]:
        """Claim up to `free` jobs (at most a batch) in one round trip; raises what the connection raises."""
        limit = min(free, self.batch_size)
        params = self.claim_params(limit)
        if self.unlimited:
            begin, claimed, _ = db.fetch_in_transaction(
                (sql.CLAIM_BEGIN, params), (sql.CLAIM_UNLIMITED, params), (sql.CLAIM_COMMIT_UNFLUSHED, None)
            )
            windows: list[tuple] = []
        else:
            begin, claimed, windows = db.fetch_in_transaction(
                (sql.CLAIM_BEGIN, params), (sql.CLAIM, params), (sql.CLAIM_RATE_WINDOWS, None)
            )
        was_unlimited, self.unlimited = self.unlimited, not begin[0][-1]
        self.claims += 1
        self.claimed += len(claimed)
        self.next_poll = now + self.poll_seconds
        wait = rate_wait(windows)
        with self._lock:
            while self._retry_wakes and self._retry_wakes[0] <= now:
                heapq.heappop(self._retry_wakes)
            if wait is not None:  # a rate-limited queue has jobs waiting: come back when it may start one
                heapq.heappush(self._retry_wakes, now + wait + RETRY_WAKE_SLACK_SECONDS)
        # A queue became limited or paused since the last claim, so the unlimited claim took nothing: claim again
        # at once with the full one.
        self.maybe_ready = len(claimed) == limit or (was_unlimited and not self.unlimited)
        for _job_id, tenant, name, _attempt, _max, _token, _data, lag, _tp, _ts, queue in claimed:
            metrics.observe_start(queue=queue, job_type=name, tenant=tenant, lag_seconds=lag)
        return [
            Attempt(
                job_id=job_id,
                tenant=tenant,
                name=name,
                attempt=attempt_no,
                max_attempts=max_attempts,
                token=token,
                data=data,
                queue=queue,
                started=now,
                trace={"traceparent": traceparent, "tracestate": tracestate},
            )
            for job_id, tenant, name, attempt_no, max_attempts, token, data, _lag, traceparent, tracestate, queue in (
                claimed
            )
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
