"""The worker's recorder: outcomes and handler progress, recorded on a thread and a connection of their own.

Claims and records are independent statements; on two connections the database executes them at the same time
instead of one after the other, which is most of a worker's throughput on short jobs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from .connection import open_connection

logger = logging.getLogger("jobscheduler.worker")


class Recorder(threading.Thread):
    def __init__(self, record: Callable[[psycopg.Connection], bool], ready: threading.Event) -> None:
        super().__init__(name="jobscheduler-recorder", daemon=True)
        self._record = record
        self._ready = ready
        self._stopped = threading.Event()

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
                while self._record(conn):  # until nothing is left: outcomes keep arriving under load
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
