"""Battery item 11: Temporal. A worker process killed mid-activity while another runs, and duplicate starts of one
singleton job.

Real `runjobworker --backend temporal` processes (tests/support/worker_main.py, so `t.ledger` is registered in
them as in this process) run against the session's Temporal dev server (the fixture of tests/temporal/conftest.py)
and the test database, each test on a task queue of its own. Jobs are scheduled through `JobRunnerFactory` with
`JOB_RUNNER_TYPE=temporal`; `t.ledger` writes one row per execution on its own connection and `ledger.check`
counts them against the record, as for pgboss.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid

import pytest
from django.db import connection
from temporalio.client import WorkflowExecutionStatus

from jobscheduler import JobRunnerFactory
from jobscheduler.temporal.client import connect_client
from tests.acceptance.ledger import check
from tests.acceptance.support import drain, query
from tests.support.processes import wait_for
from tests.temporal.conftest import temporal_address  # noqa: F401  (the session's dev server, started once)

pytestmark = [pytest.mark.acceptance, pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

#: A killed worker's attempt is given up by Temporal after this long without a heartbeat (then retried).
HEARTBEAT_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def task_queue() -> str:
    return f"acc-temporal-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def temporal_runner(fast_settings, temporal_address, task_queue):  # noqa: F811
    """The process's runner is Temporal (no fallback), on this test's task queue."""
    fast_settings.JOB_RUNNER_TYPE = "temporal"
    fast_settings.JOB_RUNNER_FALLBACK_TO_PGBOSS = False
    fast_settings.TEMPORAL_ADDRESS = temporal_address
    fast_settings.TEMPORAL_JOB_TASK_QUEUE = task_queue
    fast_settings.JOBSCHEDULER = {
        **fast_settings.JOBSCHEDULER,
        "TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS": HEARTBEAT_TIMEOUT_SECONDS,
    }
    JobRunnerFactory.reset()
    runner = JobRunnerFactory.get_instance()
    assert runner.runner_type == "temporal"
    yield runner
    JobRunnerFactory.reset()


def start_temporal_worker(workers, temporal_address, task_queue, concurrency: int):  # noqa: F811
    worker = workers.start(
        "--backend",
        "temporal",
        "--concurrency",
        str(concurrency),
        "--shutdown-timeout",
        "1",
        extra_env={"TEMPORAL_ADDRESS": temporal_address, "TEMPORAL_JOB_TASK_QUEUE": task_queue},
        wait=False,
    )
    wait_for(
        lambda: "Temporal worker on" in worker.output() or worker.proc.poll() is not None,
        timeout=30,
        message="the Temporal worker to start",
    )
    assert worker.proc.poll() is None, worker.output()
    return worker


def running_on(pid: int) -> list[tuple]:
    """(job_id, attempt) of the attempts a worker process has started and not ended."""
    return query(
        "SELECT job_id, (metadata ->> 'attempts')::int FROM jobs WHERE status = 'processing' "
        "AND metadata ->> 'workerId' LIKE %s",
        [f"temporal:%:{pid}"],
    )


def workflow_statuses(address: str, workflow_ids: list[str]) -> dict[str, list[WorkflowExecutionStatus]]:
    """Every run Temporal has of each workflow id (visibility), by id."""

    async def runs() -> dict[str, list[WorkflowExecutionStatus]]:
        client = await connect_client(address, "default", 10)
        found: dict[str, list[WorkflowExecutionStatus]] = {wid: [] for wid in workflow_ids}
        for wid in workflow_ids:
            async for wf in client.list_workflows(f'WorkflowId = "{wid}"'):
                found[wid].append(wf.status)
        return found

    return asyncio.run(runs())


def test_worker_killed_mid_activity_every_job_completes(
    temporal_runner,
    workers,
    temporal_address,  # noqa: F811
    task_queue,
    tenant,
):
    """Two worker processes; one is SIGKILLed while it runs attempts. Temporal notices (heartbeat timeout) and
    the other finishes everything: nothing lost or stuck, every repeated execution is the killed worker's, and
    each lost attempt is recorded as `AttemptLost` before the attempt that completed the job."""
    victim = start_temporal_worker(workers, temporal_address, task_queue, concurrency=4)
    survivor = start_temporal_worker(workers, temporal_address, task_queue, concurrency=4)
    rng = random.Random(11)
    ids = [
        temporal_runner.schedule_job(
            "t.ledger", {"seconds": round(rng.uniform(1.0, 2.0), 2)}, tenant_id=tenant
        ).job_id
        for _ in range(36)
    ]
    wait_for(lambda: len(running_on(victim.pid)) >= 3, timeout=20, message="the victim to run attempts")
    time.sleep(0.3)  # into the handlers' sleep, well before any of them ends
    workers.kill(victim)
    in_flight = running_on(victim.pid)  # read after the kill: what the dead worker left started and unended
    assert in_flight, "the kill must interrupt attempts"

    drain(ids, timeout=60, pool=workers)
    report = check("temporal-kill", ids, faulted_pids=workers.faulted)
    report.assert_clean()
    assert {e.pid for e in report.executions} <= {victim.pid, survivor.pid}
    assert survivor.proc.poll() is None, survivor.output()

    # The record shows every lost attempt: started on the victim, ended as AttemptLost, then retried.
    lost = {
        (job_id, int(attempt)): worker_id
        for job_id, attempt, worker_id in query(
            "SELECT f.job_id, f.result ->> 'attempt', s.result ->> 'workerId' FROM job_details f "
            "JOIN job_details s ON s.job_id = f.job_id AND s.step_name = 'execution_started' "
            "AND s.result ->> 'attempt' = f.result ->> 'attempt' "
            "WHERE f.step_name = 'execution_failed' AND f.result ->> 'errorType' = 'AttemptLost'"
        )
    }
    assert all(w.endswith(f":{victim.pid}") for w in lost.values()), lost
    unended = set(
        query(
            "SELECT s.job_id, (s.result ->> 'attempt')::int FROM job_details s WHERE s.step_name = "
            "'execution_started' AND s.result ->> 'workerId' LIKE %s AND NOT EXISTS (SELECT 1 FROM job_details e "
            "WHERE e.job_id = s.job_id AND e.retry_count = s.retry_count AND e.step_name IN "
            "('execution_completed', 'execution_failed', 'execution_cancelled'))",
            [f"temporal:%:{victim.pid}"],
        )
    )
    assert not unended, f"attempts of the killed worker with no recorded end: {unended}"
    assert set(in_flight) <= set(lost), f"in flight at the kill {in_flight}, recorded lost {sorted(lost)}"
    for job_id, attempt in lost:
        steps = query(
            "SELECT step_name, result ->> 'errorType', (result ->> 'attempt')::int FROM job_details "
            "WHERE job_id = %s ORDER BY processed_at",
            [job_id],
        )
        at = steps.index(("execution_failed", "AttemptLost", attempt))
        after = [(s, a) for s, _, a in steps[at + 1 : at + 3]]
        assert after == [("execution_retry_scheduled", attempt), ("execution_started", attempt + 1)], steps
        assert steps[-1][0] == "execution_completed", steps
    survivor_id = f"temporal:%:{survivor.pid}"
    assert query(
        "SELECT count(*) FROM jobs WHERE job_id = ANY(%s) AND (metadata ->> 'attempts')::int >= 2 "
        "AND metadata ->> 'workerId' NOT LIKE %s",
        [[j for j, _ in lost], survivor_id],
    ) == [(0,)]

    # Temporal agrees: one run per job, every one completed.
    externals = dict(
        query(
            "SELECT job_id::text, external_id FROM jobs WHERE job_id = ANY(%s)", [[uuid.UUID(i) for i in ids]]
        )
    )
    # (The record is final when the activity ends; the workflow closes a moment later.)
    runs = wait_for(
        lambda: (
            (r := workflow_statuses(temporal_address, list(externals.values())))
            and all(WorkflowExecutionStatus.RUNNING not in v for v in r.values())
            and r
        ),
        timeout=15,
        message="every workflow to close",
    )
    assert all(r == [WorkflowExecutionStatus.COMPLETED] for r in runs.values()), runs
    print(
        f"temporal-kill: {len(in_flight)} attempts in flight at the kill, {len(lost)} recorded AttemptLost, "
        f"{len(report.duplicated)} re-executed after the kill"
    )


def test_duplicate_singleton_starts_give_one_workflow(
    temporal_runner,
    workers,
    temporal_address,  # noqa: F811
    task_queue,
    tenant,
):
    """Many threads start the same singleton job (same tenant and key) at once, then again while it runs: every
    call returns the same job id, Temporal has one workflow, the record one live job that ran once."""
    start_temporal_worker(workers, temporal_address, task_queue, concurrency=2)
    key = f"acc-singleton-{uuid.uuid4().hex[:6]}"

    def start_many(threads: int) -> list[str]:
        barrier = threading.Barrier(threads)
        results: list[str | BaseException] = [None] * threads  # type: ignore[list-item]

        def call(i: int) -> None:
            try:
                connection.ensure_connection()  # connected first, so the calls really race
                barrier.wait(10)
                results[i] = temporal_runner.schedule_job(
                    "t.ledger", {"seconds": 3}, tenant_id=tenant, singleton_key=key
                ).job_id
            except BaseException as exc:  # reported below
                results[i] = exc
            finally:
                connection.close()

        pool = [threading.Thread(target=call, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join(60)
        errors = [r for r in results if not isinstance(r, str)]
        assert not errors, errors
        return results  # type: ignore[return-value]

    first = start_many(16)
    rows = query(
        "SELECT job_id::text, status::text, metadata ->> 'cancelReason' FROM jobs WHERE tenant = %s "
        "ORDER BY created_at",
        [tenant],
    )
    # One live job record; every other row written by a losing call is cancelled as its duplicate.
    live = [r[0] for r in rows if r[1] != "cancelled"]
    assert len(live) == 1, rows
    job_id = live[0]
    assert all(
        (r[2] or "").startswith(f"Duplicate of singleton job {job_id}") for r in rows if r[0] != job_id
    ), rows
    wait_for(
        lambda: (
            query("SELECT status::text FROM jobs WHERE job_id = %s", [uuid.UUID(job_id)]) == [("processing",)]
        ),
        timeout=20,
        message="the singleton job to run",
    )
    second = start_many(8)  # while it runs: every call finds the holder and writes nothing
    assert len(query("SELECT 1 FROM jobs WHERE tenant = %s", [tenant])) == len(rows)

    all_ids = [r[0] for r in rows]
    drain(all_ids, timeout=30, pool=workers)
    report = check("temporal-singleton", all_ids, faulted_pids=workers.faulted, expect_completed=[job_id])
    report.assert_clean(max_duplicated=0)
    assert [e.job_id for e in report.executions] == [uuid.UUID(job_id)]  # no loser ever ran

    # Temporal has exactly one workflow for the key: one run, completed, and it is the live record's.
    workflow_id = f"job-{tenant}-singleton-{key}"
    assert query(
        "SELECT job_id::text, external_id FROM jobs WHERE tenant = %s AND external_id IS NOT NULL", [tenant]
    ) == [(job_id, workflow_id)]
    runs = wait_for(
        lambda: (
            (r := workflow_statuses(temporal_address, [workflow_id])[workflow_id])
            and WorkflowExecutionStatus.RUNNING not in r
            and r
        ),
        timeout=10,
        message="Temporal to list the closed workflow",
    )
    assert runs == [WorkflowExecutionStatus.COMPLETED], runs
    print(f"temporal-singleton: 24 starts, {len(rows)} rows written, {len(rows) - 1} cancelled as duplicates")

    # Every call, racing or not, returned the one job's id.
    returned = {i: (first + second).count(i) for i in first + second}
    assert returned == {job_id: 24}, f"the starts returned {returned}; job rows written: {rows}"
