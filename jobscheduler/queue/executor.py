"""The worker's executor: slot threads that run claimed attempts, their deadlines, and giving up on them.

Each slot is a thread that takes one attempt at a time and runs its handler (`execution.run_attempt`). The
executor knows which attempts are running and until when. An attempt ends once: by its handler, or earlier by
the executor (timeout, shutdown), whichever comes first; its outcome goes to the completer. A handler the
executor gave up on keeps its thread until it returns, if ever, so that slot is replaced by a new thread.

An ended attempt is handed to the completer before it leaves `running`: whoever looks at the executor first and
the completer second (heartbeat, burst and shutdown checks) never misses an attempt whose lease still counts.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import queue
import threading
import time
import uuid

from django.db import connections

from .. import tracking
from ..exceptions import JobTimeout
from ..outcomes import timeout_message
from ..registry import JobHandlerRegistry
from ..states import Outcome
from .completer import Completer
from .execution import Attempt, QueueJobContext, failure_outcome, run_attempt, simple_outcome

logger = logging.getLogger("jobscheduler.worker")


class Executor:
    def __init__(
        self,
        *,
        completer: Completer,
        wake: threading.Event,
        max_payload_bytes: int,
        default_timeout_ms: int,
    ) -> None:
        self.completer = completer
        self.max_payload_bytes = max_payload_bytes
        self.default_timeout_ms = default_timeout_ms
        self.slots = 0
        self._wake = wake  # the worker's loop: a slot is free, or an attempt may be recorded soon
        self._lock = threading.Lock()
        self._running: dict[uuid.UUID, Attempt] = {}
        self._tasks: queue.SimpleQueue[Attempt | None] = queue.SimpleQueue()

    # -- what runs ------------------------------------------------------------------------------------------------

    def start(self, attempts: list[Attempt], now: float) -> None:
        """Give claimed attempts to the slots; each one's deadline runs from `now`."""
        for attempt in attempts:
            spec = JobHandlerRegistry.find(attempt.name)
            timeout_ms = spec.timeout_ms if spec else self.default_timeout_ms
            attempt.deadline = now + timeout_ms / 1000.0
            attempt.ctx = QueueJobContext(attempt, self.completer.submit)
            with self._lock:
                self._running[attempt.job_id] = attempt
            self._tasks.put(attempt)

    def running(self) -> list[Attempt]:
        with self._lock:
            return list(self._running.values())

    @property
    def running_count(self) -> int:
        with self._lock:
            return len(self._running)

    def find(self, job_id: uuid.UUID) -> Attempt | None:
        with self._lock:
            return self._running.get(job_id)

    def next_deadline(self) -> float | None:
        with self._lock:
            return min((a.deadline for a in self._running.values()), default=None)

    # -- ending attempts ------------------------------------------------------------------------------------------

    def finish(
        self, attempt: Attempt, outcome: tracking.AttemptOutcome, *, give_up_thread: bool = False
    ) -> bool:
        """Hand an attempt's outcome to the completer; only the first outcome of an attempt counts.

        `give_up_thread`: the outcome is decided without the handler (timeout, shutdown); its thread leaves the
        pool when the handler returns, if ever.
        """
        with self._lock:
            if attempt.done:
                return False
            attempt.done = True
            attempt.ended = time.monotonic()
            attempt.lost = give_up_thread
        self.completer.add(attempt, outcome)
        with self._lock:
            if self._running.get(attempt.job_id) is attempt:  # not a later attempt of the same job
                del self._running[attempt.job_id]
        self._wake.set()
        return True

    def expire_timeouts(self, now: float) -> None:
        """Fail every attempt past its deadline with JobTimeout, interrupt its handler, replace its slot."""
        with self._lock:
            late = [a for a in self._running.values() if a.deadline <= now]
        for attempt in late:
            spec = JobHandlerRegistry.find(attempt.name)
            error = JobTimeout(timeout_message(spec.timeout_ms if spec else "?"))
            outcome = failure_outcome(attempt, error, spec.retry if spec else None)
            if not self.finish(attempt, outcome, give_up_thread=True):
                continue
            if attempt.ctx:
                attempt.ctx.mark_cancelled()
            interrupt(attempt)
            self.add_slots(1)
            logger.warning(
                "Job %s attempt %d timed out",
                attempt.job_id,
                attempt.attempt,
                extra={"action": "job_timeout", "job_id": str(attempt.job_id), "attempt": attempt.attempt},
            )

    def release_all(self) -> None:
        """Shutdown: give every running attempt back without using it up; the handlers are told to stop."""
        for attempt in self.running():
            released = simple_outcome(attempt, Outcome.RELEASED, reason="Worker shut down")
            if self.finish(attempt, released, give_up_thread=True) and attempt.ctx:
                attempt.ctx.mark_cancelled()

    # -- slots (handler threads) ----------------------------------------------------------------------------------

    def add_slots(self, count: int) -> None:
        for _ in range(count):
            self.slots += 1
            threading.Thread(
                target=self._slot_main, name=f"jobscheduler-slot-{self.slots}", daemon=True
            ).start()

    def stop_slots(self) -> None:
        """Each slot thread exits after its current attempt (a given-up one, whenever its handler returns)."""
        for _ in range(self.slots):
            self._tasks.put(None)

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
            self.finish(attempt, outcome)
            if attempt.lost:  # this thread was given up on (timeout); a replacement took its slot
                break
        if loop is not None:
            loop.close()


def interrupt(attempt: Attempt) -> None:
    """Best effort: cancel an async handler's task, or raise JobTimeout inside a sync handler's thread."""
    if attempt.loop is not None and attempt.task is not None:
        attempt.loop.call_soon_threadsafe(attempt.task.cancel)
    elif attempt.thread is not None and attempt.thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(attempt.thread.ident), ctypes.py_object(JobTimeout)
        )
