"""Workload (f): workflow throughput, a wide fan-out and a long chain, on pgboss and on our Temporal backend.

- fan-out: one workflow of WF_WIDTH `noop` steps and one `noop_fanin` step after all of them (the fan-in
  reads its dependencies' results, as Celery's chord callback is handed its header's results);
- chain: WF_CHAIN `noop` steps, each `after` the previous one.

One worker process with the drain's arguments (`--no-scheduler --concurrency C`), but not `--burst`: it must
be up before the workflow exists, so it is spawned first and warmed up by one job. Then the graph is built
(not timed), and bench.measure.wait_workflow times the `schedule_workflow` call until the poll that sees the
last step `completed` in `jobs.status`. Afterwards, from the record (untimed): every step completed, none
started before a dependency of its completed (`startedAt` against `completedAt` along every edge), and the
fan-in was handed WF_WIDTH results. Celery's side is bench/peers/celery_driver.py.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench import measure, procs, workloads
from bench.config import Config
from bench.db import Db
from bench.workloads import TENANT

if TYPE_CHECKING:  # jobscheduler needs Django set up, which bench.djsetup does before the workloads run
    from jobscheduler import Workflow

FAN_OUT, CHAIN = "fan_out", "chain"

STATUS_SQL = "SELECT status FROM jobs WHERE tenant = %s AND job_id = %s"

#: Steps, completed steps, edges whose dependent started before its dependency completed, the fan-in's result.
CHECK_SQL = """
WITH steps AS (
  SELECT job_id, status, metadata FROM jobs
  WHERE tenant = %(tenant)s AND metadata->>'workflowId' = %(workflow)s
)
SELECT
  (SELECT count(*) FROM steps),
  (SELECT count(*) FROM steps WHERE status = 'completed'),
  (SELECT count(*) FROM steps s
     CROSS JOIN LATERAL jsonb_array_elements_text(s.metadata->'dependsOn') AS d(dep)
     JOIN steps p ON p.job_id = d.dep::uuid
     WHERE (s.metadata->>'startedAt')::timestamptz < (p.metadata->>'completedAt')::timestamptz),
  (SELECT d.result->'result' FROM job_details d
     WHERE d.tenant = %(tenant)s AND d.job_id = %(last)s AND d.step_name = 'execution_completed'
     LIMIT 1)
"""


def fan_out(width: int) -> Workflow:
    """`width` no-op steps and one fan-in step after all of them."""
    from jobscheduler import Workflow

    wf = Workflow("bench-fan-out", tenant_id=TENANT)
    steps = [wf.add("noop") for _ in range(width)]
    wf.add("noop_fanin", after=steps)
    return wf


def chain(length: int) -> Workflow:
    """`length` no-op steps, each after the previous one."""
    from jobscheduler import Workflow

    wf = Workflow("bench-chain", tenant_id=TENANT)
    prev = None
    for _ in range(length):
        prev = wf.add("noop", after=[prev] if prev else [])
    return wf


def run_pgboss(cfg: Config, db: Db) -> dict[str, Any]:
    """Both shapes on pgboss, one worker process for both."""
    env = procs.worker_env(cfg.database_url)
    return _run(
        db,
        measure.WF_WIDTH,
        measure.WF_CHAIN,
        "pgboss",
        lambda: procs.spawn_worker(workloads.worker_args(cfg, burst=False), "workflow-pgboss", env),
    )


def run_temporal(cfg: Config, db: Db) -> dict[str, Any]:
    """Both shapes on our Temporal backend (a fresh dev server), at the Temporal sizes."""
    from bench import temporal_bench

    with temporal_bench.backend():
        return _run(
            db,
            measure.WF_WIDTH_TEMPORAL,
            measure.WF_CHAIN_TEMPORAL,
            "temporal",
            lambda: temporal_bench.spawn_worker(cfg, "workflow-temporal"),
        )


def _run(
    db: Db, width: int, length: int, label: str, spawn: Callable[[], subprocess.Popen]
) -> dict[str, Any]:
    """A shape of size 0 is skipped. The worker is not stopped between shapes: the second one starts warm."""
    db.clean()
    out: dict[str, Any] = {}
    worker = spawn()
    try:
        _warm_up(db, worker)
        if width:
            out[FAN_OUT] = _timed(db, fan_out(width), worker, f"{label} fan-out") | {"width": width}
            _say(out[FAN_OUT])
        if length:
            out[CHAIN] = _timed(db, chain(length), worker, f"{label} chain") | {"length": length}
            _say(out[CHAIN])
    finally:
        procs.stop(worker)
    db.clean()
    return out


def _warm_up(db: Db, worker: subprocess.Popen) -> None:
    """One job through the worker, then 1 s of quiet: start-up is not part of a workflow's time."""
    job = workloads._runner().schedule_job("noop", {}, tenant_id=TENANT)
    deadline = time.monotonic() + measure.STARTUP_TIMEOUT
    while db.scalar(STATUS_SQL, [TENANT, job.job_id]) != "completed":
        _alive(worker)
        measure.check_deadline(deadline, "workflow worker warm-up")
        time.sleep(0.1)
    time.sleep(1.0)


def _timed(db: Db, wf: Workflow, worker: subprocess.Popen, what: str) -> dict[str, Any]:
    runner = workloads._runner()
    steps = len(wf.steps)
    t_start = time.monotonic()
    result = runner.schedule_workflow(wf)
    scheduled = time.monotonic() - t_start
    last = result.job_ids[-1]

    def done() -> bool:
        _alive(worker)
        return db.scalar(STATUS_SQL, [TENANT, last]) == "completed"

    out = measure.wait_workflow(done, steps, measure.WF_TIMEOUT, what, t_start=t_start)
    out["schedule_call_s"] = scheduled
    out["check"] = check(db, result.workflow_id, last, steps, wf.steps[-1].job_name == "noop_fanin")
    return out


def check(db: Db, workflow_id: str, last: str, steps: int, fan_in: bool) -> dict[str, Any]:
    """What the record says about one workflow once its last step completed."""
    total, completed, early, fan_in_result = db.row(
        CHECK_SQL, {"tenant": TENANT, "workflow": workflow_id, "last": last}
    )
    expected_fan_in = steps - 1 if fan_in else None
    ok = total == steps and completed == steps and early == 0
    if fan_in:
        ok = ok and fan_in_result == expected_fan_in
    return {
        "ok": ok,
        "steps": total,
        "completed": completed,
        "started_before_a_dependency_completed": early,
        "fan_in_results": fan_in_result if fan_in else None,
        "fan_in_expected": expected_fan_in,
    }


def _alive(worker: subprocess.Popen) -> None:
    if worker.poll() is not None:
        raise RuntimeError(f"the workflow worker exited (code {worker.returncode})")


def _say(res: dict[str, Any]) -> None:
    rate = res["steps_per_s"]
    rate_text = "timed out" if rate is None else f"{rate:,.1f} steps/s"
    verdict = "OK" if res["check"]["ok"] else f"CHECK FAILED {res['check']}"
    print(
        f"  {res['what']}: {res['steps']} steps in {res['elapsed_s']:.2f}s = {rate_text}; {verdict}",
        flush=True,
    )
