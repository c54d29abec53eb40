"""Fakes for unit tests of the pgboss worker's parts: a main connection with claimable rows instead of a
database, and the rows and handlers the tests claim and run. The parts themselves are the real ones."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg

from jobscheduler.queue import sql
from jobscheduler.queue.completer import Batch, Completer
from jobscheduler.queue.connection import WorkerConnection
from jobscheduler.queue.execution import Attempt


class FakeDatabase(WorkerConnection):
    """Answers the worker's claim from a list of ready rows (the shape `sql.CLAIM` returns); records each claim's
    limit. `lose_next` makes the next claim fail as a lost connection would."""

    def __init__(self, rows: list[tuple] | None = None) -> None:
        super().__init__(give_up=lambda: True)
        self.ready = list(rows or [])
        self.limits: list[int] = []
        self.lose_next = False
        self.reopened = 0
        self.limited = False
        self.statements: list[str] = []

    def open(self) -> None:
        self.reopened += 1

    def fetch_in_transaction(self, *steps: tuple[str, dict | None]) -> list[list[tuple]]:
        """A claim: CLAIM_BEGIN (its last column: whether a served queue is `limited`, an attribute of the fake),
        then the full claim and its rate windows (none), or the unlimited claim and its unflushed commit; the rows
        taken (each with its
        queue, "default", last, as the claim statements return them). The unlimited claim takes nothing while a
        queue is limited, as its own check in the database would."""
        statements = [statement for statement, _ in steps]
        assert statements in (
            [sql.CLAIM_BEGIN, sql.CLAIM, sql.CLAIM_RATE_WINDOWS],
            [sql.CLAIM_BEGIN, sql.CLAIM_UNLIMITED, sql.CLAIM_COMMIT_UNFLUSHED],
        ), statements
        self.statements.append(statements[1])
        if self.lose_next:
            self.lose_next = False
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        limit = steps[1][1]["limit"]
        self.limits.append(limit)
        begin = [(None, "5s", "[]", self.limited)]
        if statements[1] is sql.CLAIM_UNLIMITED and self.limited:
            return [begin, [], []]
        taken, self.ready = self.ready[:limit], self.ready[limit:]
        return [begin, [(*row, "default") for row in taken], []][: len(steps)]

    def execute(self, statement: str, params: dict) -> None:
        raise AssertionError("the unit tests never run the worker's register/unregister")

    def close(self) -> None:
        pass


def claim_row(name: str, *, attempt: int = 1, max_attempts: int = 3, data: str = "{}") -> tuple:
    """A row as `sql.CLAIM` returns it: job_id, tenant, name, attempt, max_attempts, lease token, data text, queue
    lag in seconds, and the enqueue's trace context (traceparent, tracestate; none here)."""
    return (uuid.uuid4(), uuid.uuid4(), name, attempt, max_attempts, uuid.uuid4(), data, 0.0, None, None)


def attempt_of(name: str, *, attempt: int = 1, max_attempts: int = 3, data: str = "{}") -> Attempt:
    job_id, tenant, name, attempt, max_attempts, token, data, *_lag_and_trace = claim_row(
        name, attempt=attempt, max_attempts=max_attempts, data=data
    )
    return Attempt(
        job_id=job_id,
        tenant=tenant,
        name=name,
        attempt=attempt,
        max_attempts=max_attempts,
        token=token,
        data=data,
    )


def record_all(completer: Completer) -> Batch:
    """What the completer's thread does after a successful FINISH, without the database: every outcome in the
    buffer is recorded (none is stale)."""
    batch = completer.take()
    completer.recorded(batch, {a.job_id for a, _ in batch.outcomes}, time.monotonic())
    return batch


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


class Gate:
    """A handler that blocks until opened or (with `honour_cancel`) its job is cancelled; `entered` is set once it
    runs, `exits` says how it ended. It polls, so that an interrupting exception (a timeout) reaches it."""

    def __init__(self, *, honour_cancel: bool = True) -> None:
        self.honour_cancel = honour_cancel
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.exits: list[str] = []

    def handler(self, job_id: str, data: dict) -> dict:
        from jobscheduler import current_job

        self.entered.set()
        ctx = current_job()
        try:
            while not self.opened.wait(0.005):
                if self.honour_cancel and ctx.is_cancelled:
                    self.exits.append("cancelled")
                    return {"stopped": True}
        except BaseException as exc:
            self.exits.append(type(exc).__name__)
            raise
        self.exits.append("opened")
        return {"ok": True}
