"""A worker thread that runs one step periodically on a database connection of its own.

The heartbeat and maintenance depend on it: leases and rescue stop if their thread dies, so a step's failure is
logged, the connection re-made, and the next step runs on time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from .connection import open_connection

logger = logging.getLogger("jobscheduler.worker")


class PeriodicThread(threading.Thread):
    def __init__(
        self,
        what: str,
        step: Callable[[psycopg.Connection], object],
        interval: float,
        *,
        first_delay: float,
        on_connect: Callable[[psycopg.Connection], object] | None = None,
    ) -> None:
        super().__init__(name=f"jobscheduler-{what}", daemon=True)
        self._what = what
        self._step = step
        self._interval = interval
        self._first_delay = first_delay
        self._on_connect = on_connect
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        conn = None
        delay = self._first_delay
        while not self._stopped.wait(delay):
            delay = self._interval
            try:
                if conn is None or conn.closed:
                    conn = open_connection()
                    if self._on_connect:
                        self._on_connect(conn)
                self._step(conn)
            except Exception as exc:  # the next step must run: leases and rescue depend on it
                logger.warning(
                    "%s failed (%s); reconnecting",
                    self._what.capitalize(),
                    exc,
                    exc_info=True,
                    extra={"action": f"{self._what}_error"},
                )
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
