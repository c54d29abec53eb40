"""Issue 18: the record's PostgreSQL goes away under a Temporal worker; no job fails for it.

A cluster of the test's own holds the record (`jobs`, `job_details`); the session's database stays up and holds
the ledger, which `t.ledger` writes after sleeping 0.5 s (the handler never touches the record's database). One
real `runjobworker --backend temporal --concurrency 4` runs 40 jobs, scheduled by a site process through the
public API, beside a Temporal Schedule firing every 5 s. When 10 jobs are final the cluster is stopped (20 s, or
60 s) and started again, or restarted (`pg_ctl restart`). Then:

- the ledger: 40/40 completed, none lost, none run twice (a handler that succeeded is never run again because
  its record write failed), nothing stuck;
- the record, final and consistent for all 40: one attempt each (bookkeeping never spends a handler's
  attempts), exactly `execution_started` + `execution_completed`, durations of the handler's run (the times
  are when things happened, not when the record caught up), caught up within the documented bound;
- while the database is away, Temporal says which records are behind (the runs' memo, shown by
  `get_job_status`); every schedule run that fired meanwhile has its one `jobs` row, completed;
- every workflow completed once, and its history replays on the current workflow code.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.worker import Replayer

from jobscheduler.temporal.client import connect_client
from jobscheduler.temporal.inputs import MEMO_RECORD_BEHIND, RECORD_RETRY_MAX_INTERVAL
from jobscheduler.temporal.workflow import GenericJobWorkflow
from tests.acceptance.ledger import check
from tests.acceptance.own_postgres import OwnPostgres
from tests.support.processes import FAST_SETTINGS, ROOT, wait_for
from tests.temporal.conftest import temporal_address  # noqa: F401  (the session's dev server, started once)

pytestmark = [pytest.mark.acceptance, pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

JOBS = 40
HANDLER_SECONDS = 0.5
CONCURRENCY = 4
FINAL_BEFORE_OUTAGE = 10
SCHEDULE_EVERY_SECONDS = 5
HEARTBEAT_TIMEOUT_SECONDS = 2.0
#: Added to the documented bound (RECORD_RETRY_MAX_INTERVAL) for a loaded 2-core machine.
SLACK_SECONDS = 15.0
#: (action, seconds the database stays down)
OUTAGES = {"stop-20s": ("stop", 20), "restart": ("restart", 0), "stop-60s": ("stop", 60)}
#: The 60 s outage makes the file run well over 3 minutes on a loaded 2-core machine: opt in with this variable.
LONG_OUTAGE_VARIABLE = "JOBSCHEDULER_LONG_OUTAGE"
CLIENT = Path(__file__).with_name("outage_client.py")


@pytest.fixture(scope="module")
def own_pg():
    pg = OwnPostgres()
    try:
        pg.start()
        pg.create_database()
        pg.migrate()
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def task_queue() -> str:
    return f"acc-outage-{uuid.uuid4().hex[:8]}"


def _site_env(own_pg: OwnPostgres, address: str, queue: str) -> dict[str, str]:
    return {
        "DATABASE_URL": own_pg.url,
        "JOB_RUNNER_TYPE": "temporal",
        "JOB_RUNNER_FALLBACK_TO_PGBOSS": "false",
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_JOB_TASK_QUEUE": queue,
        "JOBSCHEDULER": json.dumps(
            {**FAST_SETTINGS, "TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS": HEARTBEAT_TIMEOUT_SECONDS}
        ),
    }


def _client(env: dict[str, str], *args: str):
    done = subprocess.run(
        [sys.executable, str(CLIENT), *args],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"outage_client {args}: {done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _own(own_pg: OwnPostgres, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(own_pg.libpq) as conn:
        return conn.execute(sql, params).fetchall()


def _final(own_pg: OwnPostgres, ids: list[uuid.UUID]) -> int:
    return _own(
        own_pg,
        "SELECT count(*) FROM jobs WHERE job_id = ANY(%s) AND status IN ('completed', 'failed', 'cancelled')",
        [ids],
    )[0][0]


def _outage_moment(own_pg: OwnPostgres, ids: list[uuid.UUID], *, fresh_within: float | None) -> list[str]:
    """Wait for 10 final jobs, and (`fresh_within` seconds) an attempt that has just begun, so that it ends
    while the database is away; returns the workflow ids of the attempts running then. One connection, polled
    every 10 ms: on a loaded machine a connection per poll is slower than the window."""
    fresh = (
        "true"
        if fresh_within is None
        else f"(metadata ->> 'lastStartedAt')::timestamptz > now() - interval '{fresh_within} s'"
    )
    sql = (
        "SELECT count(*) FILTER (WHERE status IN ('completed', 'failed', 'cancelled')), "
        f"coalesce(array_agg(external_id) FILTER (WHERE status = 'processing' AND {fresh}), '{{}}') "
        "FROM jobs WHERE job_id = ANY(%s)"
    )
    deadline = time.monotonic() + 60
    with psycopg.connect(own_pg.libpq, autocommit=True) as conn:
        while time.monotonic() < deadline:
            final, running = conn.execute(sql, [ids]).fetchone()
            if final >= FINAL_BEFORE_OUTAGE and (running or fresh_within is None):
                return running
            if final == len(ids):
                break
            time.sleep(0.01)
    raise AssertionError(
        f"no moment with {FINAL_BEFORE_OUTAGE} final jobs and an attempt begun {fresh_within} s ago"
    )


async def _describe(address: str, workflow_ids: list[str]) -> dict[str, tuple[WorkflowExecutionStatus, bool]]:
    client = await connect_client(address, "default", 10)
    found = {}
    for wid in workflow_ids:
        desc = await client.get_workflow_handle(wid).describe()
        found[wid] = (desc.status, bool(await desc.memo_value(MEMO_RECORD_BEHIND, False)))
    return found


async def _delete_schedule(address: str, schedule_id: str) -> None:
    client = await connect_client(address, "default", 10)
    await client.get_schedule_handle(schedule_id).delete()


async def _runs_on(address: str, queue: str) -> dict[str, WorkflowExecutionStatus]:
    client = await connect_client(address, "default", 10)
    return {wf.id: wf.status async for wf in client.list_workflows(f'TaskQueue = "{queue}"')}


async def _replay(address: str, workflow_ids: list[str]) -> None:
    client = await connect_client(address, "default", 10)
    replayer = Replayer(workflows=[GenericJobWorkflow])
    for wid in workflow_ids:
        await replayer.replay_workflow(await client.get_workflow_handle(wid).fetch_history())


@pytest.mark.parametrize(
    "outage",
    [
        "stop-20s",
        "restart",
        pytest.param(
            "stop-60s",
            marks=pytest.mark.skipif(
                not os.environ.get(LONG_OUTAGE_VARIABLE),
                reason=f"a 60 s outage: set {LONG_OUTAGE_VARIABLE}=1",
            ),
        ),
    ],
)
def test_jobs_complete_across_a_database_outage(
    outage,
    own_pg,
    workers,
    temporal_address,  # noqa: F811
    task_queue,
    tenant,
):
    action, down_seconds = OUTAGES[outage]
    began = time.monotonic()
    env = _site_env(own_pg, temporal_address, task_queue)
    worker = workers.start("--backend", "temporal", "--concurrency", str(CONCURRENCY), "--shutdown-timeout", "1",
                           extra_env=env, wait=False)  # fmt: skip
    wait_for(lambda: "Temporal worker on" in worker.output() or worker.proc.poll() is not None, timeout=30,
             message="the Temporal worker to start")  # fmt: skip
    assert worker.proc.poll() is None, worker.output()
    key = f"outage-{outage}"
    _, job_ids = _client(
        env,
        *("every", "t.noop", str(SCHEDULE_EVERY_SECONDS), str(tenant), key),
        *("then", "jobs", "t.ledger", str(JOBS), str(HANDLER_SECONDS), str(tenant)),
    )
    ids = [uuid.UUID(i) for i in job_ids]
    phases = {"to start": time.monotonic() - began}

    # The moment: 10 final, and attempts that have just begun (so they end while the database is away).
    in_flight = _outage_moment(own_pg, ids, fresh_within=0.3 if action == "stop" else None)
    phases["to outage"] = time.monotonic() - began - phases["to start"]
    if action == "stop":
        own_pg.stop_now()
    behind_seen: set[str] = set()
    if action == "stop":
        down_until = time.monotonic() + down_seconds
        while time.monotonic() < down_until:
            views = asyncio.run(_describe(temporal_address, in_flight)) if in_flight else {}
            behind_seen |= {wid for wid, (_, behind) in views.items() if behind}
            time.sleep(min(1.0, max(down_until - time.monotonic(), 0)))
        own_pg.start()
    else:
        own_pg.restart()
    back_at, back_wall = time.monotonic(), time.time()
    assert worker.proc.poll() is None, worker.output()

    # Every job's record becomes final and the ledger agrees.
    wait_for(
        lambda: _final(own_pg, ids) == JOBS, timeout=60 + SLACK_SECONDS, interval=0.2, message="the drain"
    )
    drained_in = time.monotonic() - back_at
    asyncio.run(_delete_schedule(temporal_address, f"jobschedule:{tenant}:{key}"))  # no more runs
    report = check(f"temporal-outage-{outage}", ids, faulted_pids=workers.faulted, record_url=own_pg.libpq)
    report.assert_clean(max_duplicated=0)
    assert {e.attempt for e in report.executions} == {1}, "a handler attempt was spent on bookkeeping"

    # The record is final and consistent: one attempt, two steps, the handler's own times.
    rows = _own(own_pg, "SELECT job_id, status::text, metadata, extract(epoch FROM updated_at)::float8 FROM jobs "
                        "WHERE job_id = ANY(%s)", [ids])  # fmt: skip
    steps = {}
    for job_id, name, status, retry_count in _own(
        own_pg,
        "SELECT job_id, step_name, status::text, retry_count FROM job_details WHERE job_id = ANY(%s) "
        "ORDER BY processed_at, detail_id",
        [ids],
    ):
        steps.setdefault(job_id, []).append((name, status, retry_count))
    late_lags, caught_up_after = [], []
    for job_id, status, meta, updated in rows:
        assert status == "completed" and meta["attempts"] == 1 and meta["progress"] == 100, (job_id, meta)
        assert steps[job_id] == [
            ("execution_started", "processing", 0),
            ("execution_completed", "completed", 0),
        ], (job_id, steps[job_id])
        ran = datetime.fromisoformat(meta["completedAt"]) - datetime.fromisoformat(meta["startedAt"])
        assert HANDLER_SECONDS <= ran.total_seconds() < HANDLER_SECONDS + 10, (job_id, meta)
        if "recordLagSeconds" in meta:
            late_lags.append(meta["recordLagSeconds"])
            caught_up_after.append(updated - back_wall)
    bound = RECORD_RETRY_MAX_INTERVAL.total_seconds() + SLACK_SECONDS
    assert all(after <= bound for after in caught_up_after), (caught_up_after, bound)
    if action == "stop":
        assert late_lags, "the attempts running at the stop ended while the database was away"
        assert all(lag <= down_seconds + bound for lag in late_lags), late_lags
        assert behind_seen, f"no run said its record was behind while the database was down ({in_flight})"

    # Temporal agrees: every job's workflow and every schedule run completed, each with its one record.
    runs = wait_for(
        lambda: (
            (r := asyncio.run(_runs_on(temporal_address, task_queue)))
            and all(s != WorkflowExecutionStatus.RUNNING for s in r.values())
            and r
        ),
        timeout=30 + SLACK_SECONDS,
        message="every workflow on the queue to close",
    )
    assert set(runs.values()) == {WorkflowExecutionStatus.COMPLETED}, runs
    recorded = dict(_own(own_pg, "SELECT external_id, status::text FROM jobs WHERE tenant = %s", [tenant]))
    assert set(recorded) == set(runs), sorted(set(runs) ^ set(recorded))
    assert set(recorded.values()) == {"completed"}, recorded
    schedule_runs = [wid for wid in runs if wid.startswith("jobschedule:")]
    assert schedule_runs, "the schedule fired"
    phases["checks"] = time.monotonic() - back_at - drained_in
    asyncio.run(_replay(temporal_address, list(runs)))

    print(
        f"temporal-outage-{outage}: {len(in_flight)} attempt(s) running at the outage, database "
        f"{f'down {down_seconds} s' if down_seconds else 'restarted'}; drained {drained_in:.1f} s after it was back; "
        f"{len(late_lags)} ends recorded late (lag up to {max(late_lags, default=0):.1f} s, caught up at most "
        f"{max(caught_up_after, default=0):.1f} s after the database was back); {len(schedule_runs)} schedule "
        f"runs, all recorded; {len(runs)} histories replayed; seconds: "
        + ", ".join(f"{name} {value:.0f}" for name, value in phases.items())
    )
