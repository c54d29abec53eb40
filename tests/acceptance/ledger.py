"""The one checker every acceptance test runs on its execution ledger.

Handlers write one `test_ledger` row per execution (job id, attempt, worker pid, start, end) on their own
connection, so the ledger survives whatever happens to the worker that ran them. After the drain, the checker
compares it with what the test committed and with the record (`jobs`, `job_details`, the queue table):

- lost: a committed job that never finished (no row, no successful execution, or not completed);
- unexpected: an execution of a job that was never committed (a rolled-back enqueue that ran);
- duplicated: a job with more than one successful execution (at-least-once allows it, under faults only);
- unexplained: a duplicate whose earlier execution's worker was neither killed, paused nor stopped by the
  test, and whose attempt was not ended by a lease rescue: nothing but a bug explains it;
- stuck: a committed job left queued/processing in `jobs`, or any row left in the queue table;
- finalised twice: a job with more than one final step (completed/failed/cancelled) in `job_details`;
- order violated: a workflow step with an execution that started before every successful execution of one of
  its dependencies had ended (`dependencies=` only): it ran before its dependency completed;
- limit exceeded: a start that made more jobs of a queue run at once than its `concurrency`, or more of one
  tenant's jobs of the queue than its `tenant_concurrency` (from the queue's live settings). An execution runs
  from its ledger start to its ledger end; one that never ended (its worker was killed) holds its slot until
  the step that ended its attempt (the lease rescue), as the engine promises.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from tests.support.processes import libpq_url

#: One line per test, printed at the end of the session by the acceptance conftest.
SUMMARIES: list[str] = []

LIVE_STATUSES = ("pending", "queued", "processing", "active")


@dataclass(frozen=True)
class Execution:
    job_id: uuid.UUID
    attempt: int
    pid: int
    started: float
    finished: float | None


@dataclass
class LedgerReport:
    test: str
    jobs: int
    executions: list[Execution]
    lost: list[uuid.UUID] = field(default_factory=list)
    unexpected: list[uuid.UUID] = field(default_factory=list)
    duplicated: list[uuid.UUID] = field(default_factory=list)
    unexplained: list[uuid.UUID] = field(default_factory=list)
    stuck: list[uuid.UUID] = field(default_factory=list)
    finalised_twice: list[uuid.UUID] = field(default_factory=list)
    order_violated: list[uuid.UUID] = field(default_factory=list)
    rescued: set[tuple[uuid.UUID, int]] = field(default_factory=set)
    #: Starts that took a queue (or a tenant of it) over its limit: (queue, tenant or None, time, running then).
    limit_exceeded: list[tuple] = field(default_factory=list)
    #: The most jobs seen running at once per limited queue (key: queue) and per tenant (key: (queue, tenant)).
    peak: dict = field(default_factory=dict)
    #: Starts over a limit if a stalled worker's handler is counted until it really returned rather than until
    #: its lease was rescued (a worker the test paused past its lease wakes and runs on for a moment before its
    #: heartbeat tells it to stop): what the limit does not promise, reported so it is seen (see queues.md).
    stalled_over_limit: list[tuple] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"ledger[{self.test}]: jobs={self.jobs} executions={len(self.executions)} lost={len(self.lost)} "
            f"unexpected={len(self.unexpected)} duplicated={len(self.duplicated)} "
            f"unexplained={len(self.unexplained)} stuck={len(self.stuck)} "
            f"finalised_twice={len(self.finalised_twice)} order_violated={len(self.order_violated)} "
            f"rescued={len(self.rescued)} limit_exceeded={len(self.limit_exceeded)}"
            + (f" stalled_over_limit={len(self.stalled_over_limit)}" if self.stalled_over_limit else "")
        )

    def assert_clean(self, *, max_duplicated: int | None = None) -> None:
        """Nothing lost, unexpected, unexplained, stuck or finalised twice; duplicates within the budget."""
        problems = {
            "lost": self.lost,
            "unexpected": self.unexpected,
            "unexplained": self.unexplained,
            "stuck": self.stuck,
            "finalised_twice": self.finalised_twice,
            "order_violated": self.order_violated,
            "limit_exceeded": self.limit_exceeded,
        }
        bad = {k: v[:5] for k, v in problems.items() if v}
        assert not bad, f"{self.line()}\nfirst offenders: {bad}"
        if max_duplicated is not None:
            assert len(self.duplicated) <= max_duplicated, self.line()


def over_the_limit(
    executions: list[Execution],
    owner: dict[uuid.UUID, tuple[str, uuid.UUID]],
    limits: dict[str, tuple[int | None, int | None]],
    attempt_ended: dict[tuple[uuid.UUID, int], float],
    faulted: set[int] = frozenset(),
) -> tuple[list[tuple], dict]:
    """Sweep the executions of each limited queue (and of each tenant of a tenant-limited one) in time order;
    every start that leaves more running than the limit is one excess. An end at the same instant as a start
    frees its slot first. A slot is a lease: an execution holds it until its attempt's end was recorded, and an
    execution of a worker the test faulted (killed, paused) at most until then (its rescue), however long the
    handler itself ran on after waking."""
    events: dict[tuple, list[tuple[float, int]]] = defaultdict(list)
    for e in executions:
        queue, tenant = owner.get(e.job_id, (None, None))
        if queue not in limits:
            continue
        recorded = attempt_ended.get((e.job_id, e.attempt), float("inf"))
        if e.finished is None:
            end = recorded
        elif e.pid in faulted:
            end = min(e.finished, recorded)
        else:
            end = e.finished
        overall, per_tenant = limits[queue]
        for key, limit in (((queue, None), overall), ((queue, tenant), per_tenant)):
            if limit is not None:
                events[key] += [(e.started, 1), (end, -1)]
    excess: list[tuple] = []
    peak: dict = {}
    for (queue, tenant), marks in events.items():
        limit = limits[queue][0 if tenant is None else 1]
        key = queue if tenant is None else (queue, tenant)
        running = 0
        for moment, delta in sorted(marks):
            running += delta
            peak[key] = max(peak.get(key, 0), running)
            if delta > 0 and running > limit:
                excess.append((queue, tenant, moment, running))
    return excess, peak


def ledger_rows() -> list[Execution]:
    with psycopg.connect(libpq_url()) as conn:
        rows = conn.execute("SELECT job_id, attempt, pid, started, finished FROM test_ledger").fetchall()
    return [Execution(*r) for r in rows]


def check(
    test: str,
    committed: Iterable,
    *,
    faulted_pids: Iterable[int] = (),
    expect_completed: bool | Iterable = True,
    record_url: str | None = None,
    dependencies: dict | None = None,
) -> LedgerReport:
    """Check the ledger of one test against the record; prints and keeps the one-line summary.

    `committed`: the ids of every job the test committed. `faulted_pids`: worker processes the test killed,
    paused or stopped (their executions may legitimately be repeated). `dependencies`: for workflow steps, each
    step's id and the ids it waits for (their order is checked). `expect_completed`: every committed
    job must end `completed` with a successful execution (False, or the ids that must, for tests whose other
    jobs end failed on purpose; those check the final status themselves). `record_url`: where the record
    (`jobs`, `job_details`, the queue) lives when it is not the session's database (the ledger always is).
    """
    ids = {uuid.UUID(str(i)) for i in committed}
    if isinstance(expect_completed, bool):
        must_complete = ids if expect_completed else set()
    else:
        must_complete = {uuid.UUID(str(i)) for i in expect_completed}
    faulted = set(faulted_pids)
    executions = ledger_rows()
    by_job: dict[uuid.UUID, list[Execution]] = defaultdict(list)
    for e in executions:
        by_job[e.job_id].append(e)
    with psycopg.connect(record_url or libpq_url()) as conn:
        status = dict(
            conn.execute(
                "SELECT job_id, status::text FROM jobs WHERE job_id = ANY(%s)", [list(ids)]
            ).fetchall()
        )
        queue_left = {r[0] for r in conn.execute("SELECT job_id FROM jobscheduler_queue").fetchall()}
        rescued = {
            (r[0], int(r[1]))
            for r in conn.execute(
                "SELECT job_id, (result ->> 'attempt') FROM job_details WHERE job_id = ANY(%s) "
                "AND step_name = 'execution_failed' AND result ->> 'errorType' = 'LeaseExpired'",
                [list(ids)],
            ).fetchall()
        }
        final_counts = dict(
            conn.execute(
                "SELECT job_id, count(*) FROM job_details WHERE job_id = ANY(%s) AND ("
                "step_name IN ('execution_completed', 'execution_cancelled') OR (step_name = 'execution_failed'"
                " AND status = 'failed' AND NOT EXISTS (SELECT 1 FROM job_details r WHERE r.tenant = "
                "job_details.tenant AND r.job_id = job_details.job_id AND r.step_name = "
                "'execution_retry_scheduled' AND r.retry_count = job_details.retry_count))) GROUP BY job_id",
                [list(ids)],
            ).fetchall()
        )
        owner = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT job_id, coalesce(metadata ->> 'queue', 'default'), tenant FROM jobs WHERE job_id = ANY(%s)",
                [list({e.job_id for e in executions})],
            ).fetchall()
        }
        limits = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                "SELECT name, concurrency, tenant_concurrency FROM jobscheduler_queues "
                "WHERE concurrency IS NOT NULL OR tenant_concurrency IS NOT NULL"
            ).fetchall()
        }
        attempt_ended = {
            (r[0], int(r[1])): float(r[2])
            for r in conn.execute(
                "SELECT job_id, result ->> 'attempt', extract(epoch FROM min(processed_at)) FROM job_details "
                "WHERE job_id = ANY(%s) AND step_name IN ('execution_completed', 'execution_failed', "
                "'execution_cancelled', 'execution_released') AND result ? 'attempt' GROUP BY 1, 2",
                [list({e.job_id for e in executions if e.finished is None or e.pid in faulted})],
            ).fetchall()
        }
    report = LedgerReport(test=test, jobs=len(ids), executions=executions, rescued=rescued)
    report.limit_exceeded, report.peak = over_the_limit(executions, owner, limits, attempt_ended, faulted)
    if faulted:
        physical, _ = over_the_limit(executions, owner, limits, attempt_ended)
        report.stalled_over_limit = [x for x in physical if x not in report.limit_exceeded]
    for job_id in sorted(ids):
        runs = sorted(by_job.get(job_id, []), key=lambda e: e.started)
        successful = [e for e in runs if e.finished is not None]
        st = status.get(job_id)
        unfinished = st is None or (job_id in must_complete and (not successful or st != "completed"))
        if unfinished and st not in LIVE_STATUSES:  # a live one counts as stuck instead
            report.lost.append(job_id)
        if st in LIVE_STATUSES or job_id in queue_left:
            report.stuck.append(job_id)
        if final_counts.get(job_id, 0) > 1:
            report.finalised_twice.append(job_id)
        if len(successful) > 1:
            report.duplicated.append(job_id)
            for i, later in enumerate(successful[1:], start=1):
                earlier = successful[:i] + [
                    e for e in runs if e.finished is None and e.started < later.started
                ]
                if not any(e.pid in faulted or (job_id, e.attempt) in rescued for e in earlier):
                    report.unexplained.append(job_id)
                    break
    first_end = {
        job_id: min((e.finished for e in runs if e.finished is not None), default=None)
        for job_id, runs in by_job.items()
    }
    for step, deps in (dependencies or {}).items():
        step_id = uuid.UUID(str(step))
        starts = [e.started for e in by_job.get(step_id, [])]
        ends = [first_end.get(uuid.UUID(str(d))) for d in deps]
        if starts and any(end is None or min(starts) < end for end in ends):
            report.order_violated.append(step_id)
    report.unexpected = sorted({e.job_id for e in executions} - ids)
    report.stuck += sorted(queue_left - ids)
    SUMMARIES.append(report.line())
    print(report.line())
    return report
