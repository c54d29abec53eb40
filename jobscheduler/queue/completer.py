"""The worker's completer: outcomes and handler writes, buffered and recorded in batches on a thread and a
connection of their own.

Claims and records are independent statements; on two connections the database executes them at the same time
instead of one after the other, which is most of a worker's throughput on short jobs. A batch is every outcome
and handler write gathered since the last one, recorded in one transaction and one round trip: the writes, then
one FINISH statement for the outcomes. A batch that fails leaves the database as it was and is put back in
front of the buffer for the next try.

Until its outcome is recorded an attempt still holds its lease (`held`): the heartbeat keeps extending it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from .. import tracking
from ..states import Outcome
from ..telemetry import metrics
from . import sql
from .connection import open_connection, pipelined_transaction
from .execution import Attempt, apply_write, finish_statement_params
from .writes import HandlerWrite

logger = logging.getLogger("jobscheduler.worker")

#: The worker's `stats` key each recorded outcome counts under (a released attempt counts under none).
COUNTED_AS = {
    Outcome.COMPLETED: "completed",
    Outcome.FAILED: "failed",
    Outcome.RETRY: "retried",
    Outcome.CANCELLED: "cancelled",
}


@dataclass
class Batch:
    """What one recording sends: the handler writes first, then one FINISH for the outcomes."""

    outcomes: list[tuple[Attempt, tracking.AttemptOutcome]] = field(default_factory=list)
    writes: list[HandlerWrite] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.outcomes or self.writes)


class Completer(threading.Thread):
    def __init__(self, *, on_retry: Callable[[float, float], None], wake: threading.Event) -> None:
        super().__init__(name="jobscheduler-recorder", daemon=True)
        self._on_retry = on_retry  # (delay_ms, now): the producer plans a claim for when the retry is ready
        self._wake = wake  # the worker's loop: it may be waiting for the last outcomes (burst, shutdown)
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._buffer = Batch()
        self._recording: list[Attempt] = []  # outcomes in the statement being sent: their leases still count
        self.counts = dict.fromkeys(("completed", "failed", "retried", "cancelled", "stale", "flushes"), 0)

    # -- the buffer -----------------------------------------------------------------------------------------------

    def add(self, attempt: Attempt, outcome: tracking.AttemptOutcome) -> None:
        with self._lock:
            self._buffer.outcomes.append((attempt, outcome))
        self._ready.set()

    def submit(self, write: HandlerWrite) -> None:
        with self._lock:
            self._buffer.writes.append(write)
        self._ready.set()

    def held(self) -> list[Attempt]:
        """Attempts whose outcome is not recorded yet: their leases are still this worker's."""
        with self._lock:
            return [a for a, _ in self._buffer.outcomes] + self._recording

    @property
    def unrecorded(self) -> int:
        with self._lock:
            return len(self._buffer.outcomes) + len(self._recording)

    @property
    def pending(self) -> bool:
        """Anything not recorded yet, handler writes included."""
        with self._lock:
            return bool(self._buffer or self._recording)

    def take(self) -> Batch:
        """Everything buffered, as the next batch to record; its attempts count as held until `recorded`."""
        with self._lock:
            batch, self._buffer = self._buffer, Batch()
            self._recording = [a for a, _ in batch.outcomes]
        return batch

    def put_back(self, batch: Batch) -> None:
        """A batch that could not be recorded goes before whatever arrived since, for the next try."""
        with self._lock:
            self._buffer.outcomes[:0] = batch.outcomes
            self._buffer.writes[:0] = batch.writes
            self._recording = []

    def recorded(self, batch: Batch, recorded_ids: set, now: float) -> None:
        """Count a recorded batch, log its stale attempts, plan our retries, and let the loop look again."""
        if batch.outcomes:
            for attempt, outcome in batch.outcomes:
                if attempt.job_id not in recorded_ids:
                    self.counts["stale"] += 1
                    logger.warning(
                        "Stale attempt %d of job %s: its outcome (%s) was rejected, the lease had moved on",
                        attempt.attempt,
                        attempt.job_id,
                        outcome.outcome,
                        extra={
                            "action": "stale_attempt",
                            "job_id": str(attempt.job_id),
                            "attempt": attempt.attempt,
                        },
                    )
                    continue
                metrics.observe_end(
                    queue=attempt.queue,
                    job_type=attempt.name,
                    tenant=attempt.tenant,
                    outcome=outcome.outcome,
                    duration_seconds=attempt.ended - attempt.started,
                )
                if outcome.outcome in COUNTED_AS:
                    self.counts[COUNTED_AS[outcome.outcome]] += 1
                if outcome.outcome == Outcome.RETRY and outcome.retry_delay_ms is not None:
                    self._on_retry(outcome.retry_delay_ms, now)
            self.counts["flushes"] += 1
        with self._lock:
            self._recording = []  # after the retries are planned: a burst worker must not see "nothing left"
        self._wake.set()

    # -- recording ------------------------------------------------------------------------------------------------

    def record(self, conn: psycopg.Connection) -> bool:
        """Record one batch in one transaction and one round trip (pipeline mode). Returns whether there was
        anything to record. If anything fails, the batch waits for the next call, after the connection is
        re-made."""
        batch = self.take()
        if not batch:
            return False
        try:
            with pipelined_transaction(conn):
                for write in batch.writes:
                    apply_write(conn, write)
                if batch.outcomes:
                    finish = conn.execute(sql.FINISH, finish_statement_params(batch.outcomes))
            recorded_ids = {r[0] for r in finish.fetchall()} if batch.outcomes else set()
        except BaseException:
            self.put_back(batch)
            raise
        self.recorded(batch, recorded_ids, time.monotonic())
        return True

    def stop(self) -> None:
        self._stopped.set()
        self._ready.set()
        self.join(timeout=10)

    def run(self) -> None:
        conn = None
        delay = 0.2
        while True:
            self._ready.wait(0.5)
            self._ready.clear()
            try:
                if conn is None or conn.closed:
                    conn = open_connection()
                while self.record(conn):  # until nothing is left: outcomes keep arriving under load
                    delay = 0.2
            except Exception as exc:  # the outcomes are kept for the next try; recording must go on
                logger.warning("Recording failed (%s); reconnecting", exc, extra={"action": "db_lost"})
                if conn is not None:
                    conn.close()
                conn = None
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)
                self._ready.set()
                continue
            if self._stopped.is_set():
                break
        if conn is not None:
            conn.close()
