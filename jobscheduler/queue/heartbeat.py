"""The worker's heartbeat, on a thread and a connection of its own.

Leases must be extended on time whatever the main loop is doing: a claim or a record statement that is slow on a
loaded database must not make a live worker look dead (its jobs would be rescued and run twice).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from .connection import open_connection

logger = logging.getLogger("jobscheduler.worker")


class Heartbeat(threading.Thread):
    def __init__(self, beat: Callable[[psycopg.Connection], None], interval: float) -> None:
        super().__init__(name="jobscheduler-heartbeat", daemon=True)
        self._beat = beat
        self._interval = interval
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        conn = None
        while not self._stopped.wait(self._interval):
            try:
                if conn is None or conn.closed:
                    conn = open_connection()
                self._beat(conn)
            except Exception as exc:  # a heartbeat must outlive any one failure: leases depend on it
                logger.warning(
                    "Heartbeat failed (%s); reconnecting", exc, extra={"action": "heartbeat_error"}
                )
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
