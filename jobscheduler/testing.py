"""Helpers for a site's own tests: see what the code under test scheduled, then run it in-process.

    with capture_jobs() as scheduled:          # jobs go to the pgboss queue of the test database
        client.post("/signup/", {...})
    assert scheduled.names() == ["send-welcome-email"]
    [job] = scheduled.run()                    # the real execution path, in this thread
    assert job.status == "completed"

Nothing is faked: scheduling writes the queue and `jobs` rows it always writes, and `run_jobs` claims, runs and
records each job with the worker's own statements and execution code, on this thread's database connection, so
it sees (and its writes stay inside) a `TestCase`'s transaction. Retries run at once instead of after their
backoff; delayed jobs run when `until` reaches their time. Not done in-process: per-attempt timeouts, cron
ticks, cancellation of a running job.

For pytest, `jobscheduler.pytest_plugin` gives the same as fixtures; for `TestCase`, `JobsTestMixin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

import psycopg
from django.db import connections
from django.db.models import DateTimeField, Func, Q
from django.test.utils import override_settings

from .conf import setting
from .models import Job, QueueJob
from .queue import sql
from .queue.execution import (
    Attempt,
    QueueJobContext,
    apply_write,
    finish_statement_params,
    run_attempt,
)
from .record_keys import RESERVED_METADATA_KEYS, SYSTEM_METADATA_KEYS
from .runners.factory import JobRunnerFactory

#: The worker id the record shows for attempts run by `run_jobs`.
WORKER_ID = "jobscheduler.testing"
#: Attempts one `run_jobs` call makes at most by default: a job that keeps scheduling itself stops the run.
MAX_ATTEMPTS_PER_RUN = 1000

_LIBRARY_KEYS = RESERVED_METADATA_KEYS | SYSTEM_METADATA_KEYS


def _transaction_now() -> Func:
    """PostgreSQL's now(), the clock the claim compares run times with: the transaction's start, which in a
    TestCase is the same for every statement (Django's Now() is the statement's time)."""
    return Func(function="now", template="now()", output_field=DateTimeField())


class RunawayJobs(AssertionError):
    """`run_jobs` made its maximum number of attempts and jobs were still due: something keeps scheduling."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduledJob:
    """A job the code under test scheduled, as the record holds it."""

    job_id: str
    name: str
    tenant: uuid.UUID
    data: dict[str, Any]
    status: str
    #: The caller's own metadata (the library's bookkeeping keys left out).
    metadata: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    attempts: int = 0
    #: When it is due, while it waits in the queue (None once it ran or was cancelled).
    run_at: datetime | None = None

    @classmethod
    def from_record(cls, job: Job, run_at: datetime | None) -> ScheduledJob:
        meta = job.meta
        data = meta.get("data")
        return cls(
            job_id=str(job.job_id),
            name=job.type,
            tenant=job.tenant,
            data=data if isinstance(data, dict) else {},
            status=job.status,
            metadata={k: v for k, v in meta.items() if k not in _LIBRARY_KEYS},
            priority=int(meta.get("priority") or 0),
            attempts=int(meta.get("attempts") or 0),
            run_at=run_at,
        )


class CapturedJobs(Sequence[ScheduledJob]):
    """The jobs created since the capture began (until it ended), oldest first, read from the record."""

    def __init__(self) -> None:
        self._before = set(Job.objects.values_list("job_id", flat=True))
        self._ids: list[uuid.UUID] | None = None

    def _freeze(self) -> None:
        self._ids = [j.job_id for j in self._records()]

    def _records(self) -> list[Job]:
        if self._ids is not None:
            found = {j.job_id: j for j in Job.objects.filter(job_id__in=self._ids)}
            return [found[i] for i in self._ids if i in found]
        return [j for j in Job.objects.order_by("created_at", "job_id") if j.job_id not in self._before]

    @property
    def jobs(self) -> list[ScheduledJob]:
        records = self._records()
        run_at = dict(
            QueueJob.objects.filter(job_id__in=[j.job_id for j in records]).values_list("job_id", "run_at")
        )
        return [ScheduledJob.from_record(j, run_at.get(j.job_id)) for j in records]

    def names(self) -> list[str]:
        return [j.name for j in self.jobs]

    def named(self, name: str) -> list[ScheduledJob]:
        return [j for j in self.jobs if j.name == name]

    def run(self, *, until: datetime | None = None) -> list[Job]:
        """Run what is due (see `run_jobs`), then return the captured jobs' records."""
        run_jobs(until=until)
        return self._records()

    def __len__(self) -> int:
        return len(self._records())

    @overload
    def __getitem__(self, index: int) -> ScheduledJob: ...
    @overload
    def __getitem__(self, index: slice) -> list[ScheduledJob]: ...
    def __getitem__(self, index):
        return self.jobs[index]

    def __iter__(self) -> Iterator[ScheduledJob]:
        return iter(self.jobs)

    def __repr__(self) -> str:
        return f"<CapturedJobs {self.names()!r}>"


@contextlib.contextmanager
def on_pgboss() -> Iterator[None]:
    """Within the block the process runner is pgboss whatever JOB_RUNNER_TYPE says, so jobs land in the test
    database's queue, where `run_jobs` finds them (a site on Temporal tests its handlers the same way)."""
    JobRunnerFactory.reset()
    try:
        with override_settings(JOB_RUNNER_TYPE="pgboss"):
            yield
    finally:
        JobRunnerFactory.reset()


@contextlib.contextmanager
def capture_jobs() -> Iterator[CapturedJobs]:
    """Capture what the block schedules (on pgboss, see `on_pgboss`), without running anything."""
    with on_pgboss():
        captured = CapturedJobs()
        try:
            yield captured
        finally:
            captured._freeze()


def run_jobs(
    *, until: datetime | None = None, names: list[str] | None = None, max_attempts: int = MAX_ATTEMPTS_PER_RUN
) -> list[Job]:
    """Run every due job of the pgboss queue in this thread, one attempt at a time, until none is due; the
    records of the jobs that ran, in the order they first ran.

    Jobs the handlers schedule run too. A failed attempt the retry policy allows is retried at once (its
    backoff is skipped); a delayed job runs when `until` is at or past its time. `names` limits the run to
    those job names. RunawayJobs after `max_attempts` attempts with jobs still due."""
    conn = connections["default"]
    conn.ensure_connection()
    raw = conn.connection
    loop: asyncio.AbstractEventLoop | None = None

    def loop_for_thread() -> asyncio.AbstractEventLoop:
        nonlocal loop
        if loop is None:
            loop = asyncio.new_event_loop()
        return loop

    ran: list[uuid.UUID] = []
    try:
        for _ in range(max_attempts):
            claimed = _claim_one(raw, until, names)
            if claimed is None:
                return _records(ran)
            if claimed.job_id not in ran:
                ran.append(claimed.job_id)
            claimed.ctx = QueueJobContext(claimed, lambda write: apply_write(raw, write))
            outcome = run_attempt(claimed, loop_for_thread, int(setting("MAX_PAYLOAD_BYTES")))
            with psycopg.Cursor(raw) as cur:
                cur.execute(sql.FINISH, finish_statement_params([(claimed, outcome)]))
        if not _any_due(until, names):
            return _records(ran)
        raise RunawayJobs(
            f"run_jobs made {max_attempts} attempts and jobs are still due: a job keeps scheduling more "
            "(pass max_attempts=... if that many are expected)"
        )
    finally:
        if loop is not None:
            loop.close()


def _make_due(until: datetime | None) -> None:
    """Retries, and delayed jobs up to `until`, become due now (a test does not wait for a backoff)."""
    due_later = Q(attempt__gt=0) | Q(run_at__lte=until) if until is not None else Q(attempt__gt=0)
    QueueJob.objects.filter(due_later, lease_token__isnull=True, waiting_on=0).update(
        run_at=_transaction_now()
    )


def _any_due(until: datetime | None, names: list[str] | None) -> bool:
    _make_due(until)
    ready = QueueJob.objects.filter(lease_token__isnull=True, run_at__lte=_transaction_now())
    return (ready.filter(name__in=names) if names else ready).exists()


def _claim_one(raw, until: datetime | None, names: list[str] | None) -> Attempt | None:
    """The next due job, claimed (and its attempt's start recorded) with the worker's own statement."""
    _make_due(until)
    with psycopg.Cursor(raw) as cur:
        cur.execute(
            sql.CLAIM,
            {"worker_id": WORKER_ID, "lease_seconds": 3600.0, "names": names, "limit": 1},
        )
        row = cur.fetchone()
    if row is None:
        return None
    job_id, tenant, name, attempt_no, max_attempts, token, data, _lag, traceparent, tracestate = row
    return Attempt(
        job_id=job_id,
        tenant=tenant,
        name=name,
        attempt=attempt_no,
        max_attempts=max_attempts,
        token=token,
        data=data,
        trace={"traceparent": traceparent, "tracestate": tracestate},
    )


def _records(ids: list[uuid.UUID]) -> list[Job]:
    found = {j.job_id: j for j in Job.objects.filter(job_id__in=ids)}
    return [found[i] for i in ids if i in found]


class JobsTestMixin:
    """For `django.test.TestCase`: every test schedules on pgboss (see `on_pgboss`), and gets
    `self.capture_jobs()`, `self.run_jobs(...)` and `self.assertJobScheduled(name, **data)`."""

    def setUp(self) -> None:
        super().setUp()
        self.enterContext(on_pgboss())

    def capture_jobs(self) -> contextlib.AbstractContextManager[CapturedJobs]:
        return capture_jobs()

    def run_jobs(self, **options: Any) -> list[Job]:
        return run_jobs(**options)

    def assertJobScheduled(self, captured: CapturedJobs, name: str, **data: Any) -> ScheduledJob:  # noqa: N802
        """The one captured job named `name` whose data holds `data`; fails the test otherwise."""
        matching = [j for j in captured.named(name) if all(j.data.get(k) == v for k, v in data.items())]
        if len(matching) != 1:
            self.fail(  # type: ignore[attr-defined]
                f"expected one {name!r} job with data {data!r}, found {len(matching)} among {captured.names()!r}"
            )
        return matching[0]
