"""LISTEN on a dedicated connection: new jobs wake the worker at once, cancellations reach running handlers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from . import sql
from .connection import open_connection

logger = logging.getLogger("jobscheduler.worker")


class Listener(threading.Thread):
    def __init__(self, on_jobs: Callable[[], None], on_cancel: Callable[[str], None]) -> None:
        super().__init__(name="jobscheduler-listener", daemon=True)
        self._on_jobs = on_jobs
        self._on_cancel = on_cancel
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        delay = 0.2
        while not self._stopped.is_set():
            try:
                with open_connection() as conn:
                    conn.execute(f"LISTEN {sql.CHANNEL_JOBS}")
                    conn.execute(f"LISTEN {sql.CHANNEL_CANCEL}")
                    delay = 0.2
                    self._on_jobs()  # anything enqueued while we were not listening
                    while not self._stopped.is_set():
                        for note in conn.notifies(timeout=0.5):
                            if note.channel == sql.CHANNEL_CANCEL:
                                self._on_cancel(note.payload)
                            else:
                                self._on_jobs()
            except psycopg.Error as exc:
                logger.warning(
                    "LISTEN connection lost (%s); reconnecting", exc, extra={"action": "listen_lost"}
                )
                self._stopped.wait(delay)
                delay = min(delay * 2, 5.0)
