"""The pgboss worker: claim ready jobs in batches, run them on a thread pool, record outcomes in batches.

One main loop claims up to the free slots (one statement) and enforces timeouts. A recorder thread records
every outcome that finished meanwhile (one statement, plus handler progress/steps, in one transaction and one
round trip) on a connection of its own, so the database claims and records at the same time. Handler threads
never touch the queue.
A heartbeat thread extends the worker's leases on its own connection, so a slow statement in the loop cannot let
them lapse. A listener thread wakes the loop on NOTIFY; polling is the backstop. A maintenance thread rescues
expired leases, fires cron ticks and prunes history.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import json
import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
from django.db import connections

from .. import tracking
from ..conf import setting
from ..exceptions import JobTimeout
from ..outcomes import released, timeout_message
from ..registry import JobHandlerRegistry
from ..states import Outcome
from . import sql
from .connection import open_connection
from .execution import (
    Attempt,
    QueueJobContext,
    apply_write,
    failure_outcome,
    finish_statement_params,
    run_attempt,
)
from .listener import Listener
from .maintenance import Maintenance
from .periodic import PeriodicThread
from .recorder import Recorder

logger = logging.getLogger("jobscheduler.worker")


class PgBossWorker:
    def __init__(
        self,
        *,
        concurrency: int,
        job_names: list[str] | None = None,
        burst: bool = False,
        scheduler: bool = True,
        shutdown_timeout: float | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.job_names = sorted(job_names) if job_names else None
        self.burst = burst
        self.scheduler = scheduler
        self.shutdown_timeout = (
            setting("SHUTDOWN_TIMEOUT_SECONDS") if shutdown_timeout is None else shutdown_timeout
        )
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_seconds = float(setting("LEASE_SECONDS"))
        self.heartbeat_seconds = float(setting("HEARTBEAT_SECONDS"))
        self.poll_seconds = float(setting("POLL_INTERVAL_SECONDS"))
        self.batch_size = int(setting("FETCH_BATCH_SIZE"))
        self.max_payload_bytes = int(setting("MAX_PAYLOAD_BYTES"))
        self.default_timeout_ms = int(setting("DEFAULT_TIMEOUT_MS"))

        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._record_ready = threading.Event()
        self._running: dict[uuid.UUID, Attempt] = {}
        self._outcomes: list[tuple[Attempt, tracking.AttemptOutcome]] = []
        self._writes: list[tuple] = []
        self._recording: list[Attempt] = []  # outcomes in the statement being sent: their leases still count
        self._tasks: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()
        self._slots = 0
        self._stop_requested = False
        self._stop_deadline: float | None = None
        self._maybe_ready = True
        self._retry_wakes: list[float] = []  # heap of monotonic times our own retries become ready
        self._conn: psycopg.Connection | None = None
        self.stats = {
            "claimed": 0,
            "completed": 0,
            "failed": 0,
            "retried": 0,
            "cancelled": 0,
            "stale": 0,
            "claims": 0,
            "flushes": 0,
        }

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: stop claiming and drain. Second: exit at once."""

        def handle(signum, frame):
            if self._stop_requested:
                logger.warning("Second signal: exiting now", extra={"action": "forced_exit"})
                os._exit(1)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def request_stop(self) -> None:
        self._stop_requested = True
        self._wake.set()

    def run(self) -> int:
        self._conn = self._connect()
        self._execute(
            sql.REGISTER_WORKER,
            {
                "id": self.worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": self.concurrency,
                "job_names": json.dumps(self.job_names or JobHandlerRegistry.names()),
            },
        )
        listener = Listener(self._on_notify, self._on_cancel) if setting("USE_LISTEN_NOTIFY") else None
        maintenance = Maintenance(scheduler=self.scheduler)
        # Leases must be extended on time whatever the main loop is doing: a slow claim on a loaded database
        # must not make a live worker look dead (its jobs would be rescued and run twice).
        heartbeat = PeriodicThread(
            "heartbeat", self.beat, self.heartbeat_seconds, first_delay=self.heartbeat_seconds
        )
        recorder = Recorder(self.record, self._record_ready)
        if listener:
            listener.start()
        maintenance.start()
        heartbeat.start()
        recorder.start()
        for _ in range(self.concurrency):
            self._add_slot()
        self._log_banner()
        try:
            self._loop()
        finally:
            if listener:
                listener.stop()
            maintenance.stop()
            heartbeat.stop()
            recorder.stop()
            for _ in range(self._slots):
                self._tasks.put(None)
            self._safe(lambda: self._execute(sql.UNREGISTER_WORKER, {"id": self.worker_id}))
            self._conn.close()
        logger.info("Worker stopped", extra={"action": "worker_stopped", **self.stats})
        return 0

    def _log_banner(self) -> None:
        names = self.job_names or JobHandlerRegistry.names()
        logger.info(
            "jobscheduler worker %s: backend pgboss, concurrency %d, handlers: %s",
            self.worker_id,
            self.concurrency,
            ", ".join(names) or "(none)",
            extra={"action": "worker_started", "worker_id": self.worker_id, "concurrency": self.concurrency},
        )

    # -- the loop -------------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        next_poll = 0.0
        while True:
            self._wake.clear()
            now = time.monotonic()
            self._expire_timeouts(now)
            if self._stop_requested:
                if self._drained_or_released(now):
                    return
            else:
                with self._lock:
                    # Claims may run one batch ahead of recording (the database does both at once), no more:
                    # if recording falls behind, claiming waits for it instead of piling up outcomes (memory,
                    # and ever larger record statements).
                    unrecorded = len(self._outcomes) + len(self._recording)
                    free = self.concurrency - len(self._running) - max(0, unrecorded - self.concurrency)
                    retry_due = bool(self._retry_wakes and now >= self._retry_wakes[0])
                if free > 0 and (self._maybe_ready or retry_due or now >= next_poll):
                    limit = min(free, self.batch_size)
                    claimed = self._safe(lambda n=limit: self._claim(n), default=-1)
                    if claimed >= 0:
                        next_poll = now + self.poll_seconds
                        with self._lock:
                            while self._retry_wakes and self._retry_wakes[0] <= now:
                                heapq.heappop(self._retry_wakes)
                            waiting_retry = bool(self._retry_wakes)
                        self._maybe_ready = claimed == limit
                        idle = claimed == 0 and not self._running and not self._has_pending()
                        if self.burst and idle and not waiting_retry:  # our own pending retries keep us
                            return
            self._wake.wait(self._wait_time(next_poll))

    def _wait_time(self, next_poll: float) -> float:
        now = time.monotonic()
        horizon = next_poll
        with self._lock:
            if self._retry_wakes:
                horizon = min(horizon, self._retry_wakes[0])
            deadlines = [a.deadline for a in self._running.values()]
        if deadlines:
            horizon = min(horizon, min(deadlines))
        if self._stop_requested:
            horizon = min(horizon, now + 0.05)
        return max(0.0, horizon - now)

    def _has_pending(self) -> bool:
        with self._lock:
            return bool(self._outcomes or self._writes or self._recording)

    # -- claim ----------------------------------------------------------------------------------------------------

    def _start_claimed(self, rows: list[tuple]) -> int:
        now = time.monotonic()
        for job_id, tenant, name, attempt_no, max_attempts, token, data in rows:
            attempt = Attempt(
                job_id=job_id,
                tenant=tenant,
                name=name,
                attempt=attempt_no,
                max_attempts=max_attempts,
                token=token,
                data=data,
            )
            spec = JobHandlerRegistry.find(name)
            timeout_ms = spec.timeout_ms if spec else self.default_timeout_ms
            attempt.deadline = now + timeout_ms / 1000.0
            attempt.ctx = QueueJobContext(attempt, self._submit_write)
            with self._lock:
                self._running[job_id] = attempt
            self._tasks.put(attempt)
        self.stats["claimed"] += len(rows)
        return len(rows)

    # -- slots (handler threads) ----------------------------------------------------------------------------------

    def _add_slot(self) -> None:
        self._slots += 1
        threading.Thread(target=self._slot_main, name=f"jobscheduler-slot-{self._slots}", daemon=True).start()

    def _slot_main(self) -> None:
        loop: asyncio.AbstractEventLoop | None = None

        def loop_for_thread() -> asyncio.AbstractEventLoop:
            nonlocal loop
            if loop is None:
                loop = asyncio.new_event_loop()
            return loop

        while True:
            attempt = self._tasks.get()
            if attempt is None:
                break
            attempt.thread = threading.current_thread()
            try:
                outcome = run_attempt(attempt, loop_for_thread, self.max_payload_bytes)
            finally:
                for conn in connections.all(initialized_only=True):
                    conn.close_if_unusable_or_obsolete()
            self._finish(attempt, outcome)
            if attempt.lost:  # this thread was given up on (timeout); a replacement took its slot
                break
        if loop is not None:
            loop.close()

    def _finish(
        self, attempt: Attempt, outcome: tracking.AttemptOutcome, *, give_up_thread: bool = False
    ) -> bool:
        """Hand an attempt's outcome to the next flush; only the first outcome of an attempt counts.

        `give_up_thread`: the outcome is decided without the handler (timeout, shutdown); its thread leaves the
        pool when the handler returns, if ever.
        """
        with self._lock:
            if attempt.done:
                return False
            attempt.done = True
            attempt.lost = give_up_thread
            self._running.pop(attempt.job_id, None)
            self._outcomes.append((attempt, outcome))
        self._record_ready.set()
        self._wake.set()
        return True

    def _submit_write(self, write: tuple) -> None:
        with self._lock:
            self._writes.append(write)
        self._record_ready.set()

    # -- timeouts -------------------------------------------------------------------------------------------------

    def _expire_timeouts(self, now: float) -> None:
        with self._lock:
            late = [a for a in self._running.values() if a.deadline <= now]
        for attempt in late:
            spec = JobHandlerRegistry.find(attempt.name)
            error = JobTimeout(timeout_message(spec.timeout_ms if spec else "?"))
            outcome = failure_outcome(attempt, error, spec.retry if spec else None)
            if not self._finish(attempt, outcome, give_up_thread=True):
                continue
            if attempt.ctx:
                attempt.ctx.mark_cancelled()
            self._interrupt(attempt)
            self._add_slot()
            logger.warning(
                "Job %s attempt %d timed out",
                attempt.job_id,
                attempt.attempt,
                extra={"action": "job_timeout", "job_id": str(attempt.job_id), "attempt": attempt.attempt},
            )

    @staticmethod
    def _interrupt(attempt: Attempt) -> None:
        """Best effort: cancel an async handler's task, or raise JobTimeout inside a sync handler's thread."""
        if attempt.loop is not None and attempt.task is not None:
            attempt.loop.call_soon_threadsafe(attempt.task.cancel)
        elif attempt.thread is not None and attempt.thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(attempt.thread.ident), ctypes.py_object(JobTimeout)
            )

    # -- recording ------------------------------------------------------------------------------------------------

    def record(self, conn: psycopg.Connection) -> bool:
        """Record every outcome (and handler progress/steps) gathered since last time, in one transaction and
        one round trip (pipeline mode). Runs on the recorder thread's own connection, beside the claims, so the
        database works on both at once. Returns whether there was anything to record.

        If anything fails, the transaction leaves the database as it was and the outcomes wait for the next
        call, after the connection is re-made."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            writes, self._writes = self._writes, []
            self._recording = [a for a, _ in outcomes]
        if not outcomes and not writes:
            return False
        try:
            with conn.pipeline(), conn.transaction():
                for write in writes:
                    apply_write(conn, write)
                if outcomes:
                    finish = conn.execute(sql.FINISH, finish_statement_params(outcomes))
            recorded = {r[0] for r in finish.fetchall()} if outcomes else set()
        except BaseException:
            with self._lock:
                self._outcomes[:0] = outcomes
                self._writes[:0] = writes
                self._recording = []
            raise
        if outcomes:
            self._note_recorded(outcomes, recorded)
        with self._lock:
            self._recording = []
        self._wake.set()  # the loop may be waiting for the last outcomes to be recorded (burst, shutdown)
        return True

    def _claim(self, limit: int) -> int:
        rows = self._execute(
            sql.CLAIM,
            {
                "worker_id": self.worker_id,
                "lease_seconds": self.lease_seconds,
                "names": self.job_names,
                "limit": limit,
            },
            fetch=True,
        )
        self.stats["claims"] += 1
        return self._start_claimed(rows)

    def _note_recorded(self, outcomes: list[tuple[Attempt, tracking.AttemptOutcome]], recorded: set) -> None:
        for attempt, outcome in outcomes:
            if attempt.job_id not in recorded:
                self.stats["stale"] += 1
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
            key = {"retry": "retried", "completed": "completed", "failed": "failed", "cancelled": "cancelled"}
            if outcome.outcome in key:
                self.stats[key[outcome.outcome]] += 1
            if outcome.outcome == Outcome.RETRY and outcome.retry_delay_ms is not None:
                with self._lock:
                    heapq.heappush(
                        self._retry_wakes, time.monotonic() + outcome.retry_delay_ms / 1000.0 + 0.005
                    )
        self.stats["flushes"] += 1

    # -- heartbeat and cancellation -------------------------------------------------------------------------------

    def beat(self, conn: psycopg.Connection) -> None:
        """Extend every lease this worker holds (running, or finished but not yet recorded) and pass on cancel
        requests. Runs on the heartbeat thread's own connection."""
        with self._lock:
            running = list(self._running.values())
            held = running + [a for a, _ in self._outcomes] + self._recording
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

    def _on_notify(self) -> None:
        self._maybe_ready = True
        self._wake.set()

    def _on_cancel(self, job_id: str) -> None:
        try:
            key = uuid.UUID(job_id)
        except ValueError:
            return
        with self._lock:
            attempt = self._running.get(key)
        if attempt and attempt.ctx:
            attempt.ctx.mark_cancelled()

    # -- shutdown -------------------------------------------------------------------------------------------------

    def _drained_or_released(self, now: float) -> bool:
        """While stopping: wait for running jobs, then give the rest back without using up their attempt."""
        if self._stop_deadline is None:
            self._stop_deadline = now + self.shutdown_timeout
            logger.info(
                "Stopping: no new claims; waiting up to %.1fs for %d running job(s)",
                self.shutdown_timeout,
                len(self._running),
                extra={"action": "worker_stopping", "running": len(self._running)},
            )
        if now >= self._stop_deadline:
            with self._lock:
                running = list(self._running.values())
            for attempt in running:
                given_back = released(attempt.tenant, attempt.job_id, attempt.attempt, "Worker shut down")
                if self._finish(attempt, given_back, give_up_thread=True) and attempt.ctx:
                    attempt.ctx.mark_cancelled()
            self._record_ready.set()
        return not self._running and not self._has_pending()

    # -- database plumbing ----------------------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        delay = 0.2
        while True:
            try:
                return open_connection()
            except psycopg.OperationalError as exc:
                if self._stop_requested and self._stop_deadline and time.monotonic() > self._stop_deadline:
                    raise
                logger.warning(
                    "Database unreachable (%s); retrying in %.1fs",
                    exc,
                    delay,
                    extra={"action": "db_reconnect"},
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _execute(self, statement: str, params: dict, *, fetch: bool = False):
        with self._conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if fetch else None

    def _safe(self, fn: Callable, default=None):
        """Run a database step; on a lost connection, reconnect and let the loop try again."""
        try:
            return fn()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            logger.warning("Database connection lost (%s); reconnecting", exc, extra={"action": "db_lost"})
            try:
                self._conn.close()
            except Exception:
                logger.debug("closing a broken connection failed", exc_info=True)
            self._conn = self._connect()
            return default
