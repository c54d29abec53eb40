"""What a running handler asks to be written (`current_job().progress(...)`, `.step(...)`), as typed values.

Handler threads never touch the database: a write travels from the handler's `QueueJobContext` to whoever owns
the connection (the worker's completer applies it in its next batch, before that batch's outcomes;
`jobscheduler.testing` at once). Each kind of write knows how it is recorded (`execution.apply_write`), so
nothing branches on what it holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from .. import tracking


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressWrite:
    """`current_job().progress(pct, message)`: the job's progress in its `jobs` row."""

    tenant: uuid.UUID
    job_id: uuid.UUID
    attempt: int
    pct: float
    message: str | None

    def apply(self, cursor: psycopg.Cursor) -> None:
        tracking.record_progress(self.tenant, self.job_id, self.pct, self.message, cursor=cursor)


@dataclass(frozen=True, slots=True, kw_only=True)
class StepWrite:
    """`current_job().step(name, status, result)`: a `job_details` row of the handler's own."""

    tenant: uuid.UUID
    job_id: uuid.UUID
    attempt: int
    name: str
    status: str
    result_json: str | None

    def apply(self, cursor: psycopg.Cursor) -> None:
        tracking.record_step(
            self.tenant,
            self.job_id,
            self.name,
            self.status,
            self.result_json,
            attempt=self.attempt,
            cursor=cursor,
        )


HandlerWrite = ProgressWrite | StepWrite
