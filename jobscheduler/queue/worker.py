"""The pgboss worker: claim ready jobs in batches, run them on slot threads, record outcomes in batches.

The worker wires named parts, each in its own module with its own state:

- the producer (`producer.py`) decides when to claim and how many, and runs the claim on the worker's main
  connection; the backpressure rule is `claim_capacity`;
- the executor (`executor.py`) runs attempts on slot threads, enforces their deadlines and gives up on them;
- the completer (`completer.py`) buffers outcomes and handler writes and records them in batches, on a thread
  and a connection of its own, so the database claims and records at the same time;
- the heartbeat (`heartbeat.py`) extends leases and passes cancel requests on, on its own thread and connection;
- the listener (`listener.py`) wakes the loop on NOTIFY (polling is the backstop); maintenance
  (`maintenance.py`) rescues expired leases, fires cron ticks and prunes history.

The loop itself only decides: expire timeouts, claim while there is room, and know when to stop.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
import uuid

from ..conf import setting
from ..registry import JobHandlerRegistry
from . import sql
from .completer import Completer
from .connection import WorkerConnection
from .executor import Executor
from .heartbeat import Heartbeat
from .listener import Listener
from .maintenance import Maintenance
from .producer import Producer, claim_capacity

logger = logging.getLogger("jobscheduler.worker")

#: How often a stopping worker looks whether its running jobs have finished.
STOP_CHECK_SECONDS = 0.05


class PgBossWorker:
    def __init__(
        self,
        *,
        concurrency: int,
        job_names: list[str] | None = None,
        queues: dict[str, int | None] | None = None,
        burst: bool = False,
        scheduler: bool = True,
        shutdown_timeout: float | None = None,
        worker_id: str | None = None,
        connection: WorkerConnection | None = None,
    ) -> None:
        """`connection`: the main connection (claims); by default one made from the site's database settings."""
        self.concurrency = concurrency
        self.job_names = sorted(job_names) if job_names else None
        self.queues = queues
        self.burst = burst
        self.scheduler = scheduler
        self.shutdown_timeout = (
            setting("SHUTDOWN_TIMEOUT_SECONDS") if shutdown_timeout is None else shutdown_timeout
        )
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        lease_seconds = float(setting("LEASE_SECONDS"))

        self._wake = threading.Event()
        self._stop_requested = False
        self._stop_deadline: float | None = None
        self._db = connection or WorkerConnection(give_up=self._past_stop_deadline)
        self.producer = Producer(
            worker_id=self.worker_id,
            lease_seconds=lease_seconds,
            job_names=self.job_names,
            batch_size=int(setting("FETCH_BATCH_SIZE")),
            poll_seconds=float(setting("POLL_INTERVAL_SECONDS")),
            queues=queues,
            running=lambda: self.executor.running(),
        )
        self.completer = Completer(on_retry=self.producer.note_retry, wake=self._wake)
        self.executor = Executor(
            completer=self.completer,
            wake=self._wake,
            max_payload_bytes=int(setting("MAX_PAYLOAD_BYTES")),
            default_timeout_ms=int(setting("DEFAULT_TIMEOUT_MS")),
        )
        self.heartbeat = Heartbeat(
            worker_id=self.worker_id,
            lease_seconds=lease_seconds,
            interval=float(setting("HEARTBEAT_SECONDS")),
            executor=self.executor,
            completer=self.completer,
        )

    @property
    def stats(self) -> dict[str, int]:
        counts = self.completer.counts
        return {
            "claimed": self.producer.claimed,
            **{k: counts[k] for k in ("completed", "failed", "retried", "cancelled", "stale")},
            "claims": self.producer.claims,
            "flushes": counts["flushes"],
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
        self._db.open()
        self._db.execute(
            sql.REGISTER_WORKER,
            {
                "id": self.worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "concurrency": self.concurrency,
                "job_names": json.dumps(self.job_names or JobHandlerRegistry.names()),
                "queues": json.dumps(sorted(self.queues or [])),
            },
        )
        listener = (
            Listener(self._on_notify, self.heartbeat.pass_on_cancel) if setting("USE_LISTEN_NOTIFY") else None
        )
        maintenance = Maintenance(scheduler=self.scheduler)
        if listener:
            listener.start()
        maintenance.start()
        self.heartbeat.start()
        self.completer.start()
        self.executor.add_slots(self.concurrency)
        self._log_banner()
        try:
            self._loop()
        finally:
            if listener:
                listener.stop()
            maintenance.stop()
            self.heartbeat.stop()
            self.completer.stop()
            self.executor.stop_slots()
            self._db.safely(lambda: self._db.execute(sql.UNREGISTER_WORKER, {"id": self.worker_id}), None)
            self._db.close()
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
        while True:
            self._wake.clear()
            if self.step(time.monotonic()):
                return
            self._wake.wait(self._wait_time())

    def step(self, now: float) -> bool:
        """One turn of the loop; True when the worker is done (stopped and drained, or idle in burst mode)."""
        self.executor.expire_timeouts(now)
        if self._stop_requested:
            return self._drained_or_released(now)
        free = claim_capacity(
            concurrency=self.concurrency,
            running=self.executor.running_count,
            unrecorded=self.completer.unrecorded,
        )
        if not self.producer.wants_claim(now, free):
            return False
        attempts = self._db.safely(lambda: self.producer.claim(self._db, free, now), None)
        if attempts is None:  # the connection was lost and re-made: try again next turn
            return False
        self.executor.start(attempts, time.monotonic())
        # Read in this order (see executor.py); our own pending retries keep a burst worker.
        return self.burst and not attempts and self._idle() and not self.producer.waiting_retry

    def _wait_time(self) -> float:
        """Until the next thing the loop must do. A poll or a retry falling due matters only with a free slot:
        with none, the wait lasts until an attempt ends or is recorded (both wake the loop), a deadline, or one
        poll interval as a backstop, so a full worker never spins."""
        now = time.monotonic()
        free = claim_capacity(
            concurrency=self.concurrency,
            running=self.executor.running_count,
            unrecorded=self.completer.unrecorded,
        )
        horizon = self.producer.next_wake() if free > 0 else now + self.producer.poll_seconds
        deadline = self.executor.next_deadline()
        if deadline is not None:
            horizon = min(horizon, deadline)
        if self._stop_requested:
            horizon = min(horizon, now + STOP_CHECK_SECONDS)
        return max(0.0, horizon - now)

    def _idle(self) -> bool:
        return not self.executor.running_count and not self.completer.pending

    def _on_notify(self) -> None:
        self.producer.note_ready()
        self._wake.set()

    # -- shutdown -------------------------------------------------------------------------------------------------

    def _drained_or_released(self, now: float) -> bool:
        """While stopping: wait for running jobs, then give the rest back without using up their attempt."""
        if self._stop_deadline is None:
            self._stop_deadline = now + self.shutdown_timeout
            running = self.executor.running_count
            logger.info(
                "Stopping: no new claims; waiting up to %.1fs for %d running job(s)",
                self.shutdown_timeout,
                running,
                extra={"action": "worker_stopping", "running": running},
            )
        if now >= self._stop_deadline:
            self.executor.release_all()
        return self._idle()

    def _past_stop_deadline(self) -> bool:
        return (
            self._stop_requested
            and self._stop_deadline is not None
            and time.monotonic() > self._stop_deadline
        )
