"""The soak (`make soak`, not in CI: its name does not match test_*.py, so only an explicit path collects it).

For SOAK_MINUTES (default 30) it runs a mixed workload on real pgboss worker processes: ledger jobs of a few
durations enqueued in bursts (some on a queue limited to 3 running jobs, 2 per tenant, and 20 starts a second),
jobs that succeed on a retry, jobs that always fail, and running jobs cancelled;
every FAULT_SECONDS a fault, in turn: a worker SIGKILLed (and respawned), a worker paused for a few seconds
(SIGSTOP, SIGCONT), and, on the embedded database, a PostgreSQL restart. Every REPORT_SECONDS it prints one
line: enqueued and finished counts, queue depth, each worker's RSS and the database's connection count. At the
end it drains and prints the ledger checker's summary, which must be clean (0 lost, 0 unexplained, 0 stuck,
0 limit_exceeded).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from jobscheduler import JobRunnerFactory
from tests.acceptance.ledger import check
from tests.acceptance.support import drain, embedded_data_dir, query, restart_embedded_postgres

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
FAULT_SECONDS = float(os.environ.get("SOAK_FAULT_SECONDS", "20"))
REPORT_SECONDS = float(os.environ.get("SOAK_REPORT_SECONDS", "30"))
WORKERS = 3
LIMITED_QUEUE = "soak-limited"


def rss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def report_line(elapsed: float, enqueued: int, faults: list[str], workers) -> str:
    states = dict(query("SELECT status::text, count(*) FROM jobs GROUP BY 1"))
    depth = query("SELECT count(*) FROM jobscheduler_queue")[0][0]
    connections = query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")[0][0]
    rss = ",".join(f"{w.pid}:{(rss_kib(w.pid) or 0) // 1024}MiB" for w in workers.alive())
    return (
        f"soak t={elapsed:6.0f}s enqueued={enqueued} completed={states.get('completed', 0)} "
        f"failed={states.get('failed', 0)} cancelled={states.get('cancelled', 0)} "
        f"live={sum(states.get(s, 0) for s in ('pending', 'queued', 'processing'))} queue_rows={depth} "
        f"db_connections={connections} faults={len(faults)} rss=[{rss}]"
    )


def test_soak(fast_settings, workers, tenant, other_tenant):
    runner = JobRunnerFactory.get_instance()
    for _ in range(WORKERS):
        workers.start("--concurrency", "4")
    runner.set_queue_limits(LIMITED_QUEUE, concurrency=3, tenant_concurrency=2, rate_limit="20/s")
    rng = random.Random(int(os.environ.get("SOAK_SEED", "15")))
    ledger_ids: list[str] = []
    flaky_ids: list[str] = []
    failing_ids: list[str] = []
    cancelled_ids: list[str] = []
    faults: list[str] = []
    data_dir = embedded_data_dir()
    kinds = ["kill", "pause"] + (["postgres"] if data_dir else [])
    start = time.monotonic()
    next_fault = start + FAULT_SECONDS
    next_report = start
    while time.monotonic() - start < MINUTES * 60:
        try:
            tenant_id = rng.choice([tenant, other_tenant])
            burst = [{"seconds": rng.choice([0, 0, 0.05, 0.2, 1.0])} for _ in range(rng.randint(5, 40))]
            ledger_ids += [r.job_id for r in runner.schedule_jobs("t.ledger", burst, tenant_id=tenant_id)]
            if rng.random() < 0.5:
                limited = [{"seconds": rng.choice([0, 0.05, 0.2])} for _ in range(rng.randint(1, 10))]
                ledger_ids += [
                    r.job_id
                    for r in runner.schedule_jobs(
                        "t.ledger", limited, tenant_id=tenant_id, queue=LIMITED_QUEUE
                    )
                ]
            if rng.random() < 0.3:
                flaky_ids.append(
                    runner.schedule_job("t.flaky", {"succeed_on": 2}, tenant_id=tenant_id).job_id
                )
            if rng.random() < 0.1:
                failing_ids.append(runner.schedule_job("t.fail", {}, tenant_id=tenant_id).job_id)
            if rng.random() < 0.1:
                job_id = runner.schedule_job("t.wait_cancel", {}, tenant_id=tenant_id).job_id
                time.sleep(0.3)
                runner.cancel_job(job_id, tenant_id)
                cancelled_ids.append(job_id)
        except Exception as exc:  # the database restart fault: enqueue again on the next round
            from django.db import connection

            connection.close()
            print(f"soak enqueue failed during a fault ({type(exc).__name__}: {exc}); retrying", flush=True)
            time.sleep(1)
        now = time.monotonic()
        if now >= next_fault:
            kind = kinds[len(faults) % len(kinds)]
            if kind == "kill" and workers.kill_random(rng):
                workers.start("--concurrency", "4", wait=False)
            elif kind == "pause":
                victim = rng.choice(workers.alive())
                workers.faulted.add(victim.pid)
                victim.signal(signal.SIGSTOP)
                time.sleep(3)
                victim.signal(signal.SIGCONT)
            elif kind == "postgres":
                restart_embedded_postgres(data_dir)
                from django.db import connection

                connection.close()
                workers.faulted.update(w.pid for w in workers.alive())  # every attempt may be repeated
            faults.append(kind)
            print(f"soak fault #{len(faults)}: {kind}", flush=True)
            next_fault = now + FAULT_SECONDS
        if now >= next_report:
            print(report_line(now - start, len(ledger_ids), faults, workers), flush=True)
            next_report = now + REPORT_SECONDS
        time.sleep(rng.uniform(0.2, 0.8))

    everything = ledger_ids + flaky_ids + failing_ids + cancelled_ids
    drain(everything, timeout=300, pool=workers)
    print(report_line(time.monotonic() - start, len(ledger_ids), faults, workers), flush=True)
    report = check("soak", ledger_ids, faulted_pids=workers.faulted)
    print(report.line(), flush=True)
    print(f"soak faults: {', '.join(f'{k}={faults.count(k)}' for k in kinds)}", flush=True)
    report.assert_clean()
    statuses = dict(
        query("SELECT job_id::text, status::text FROM jobs WHERE job_id = ANY(%s::uuid[])", [everything])
    )
    assert {statuses[i] for i in flaky_ids} <= {"completed"}
    assert {statuses[i] for i in failing_ids} <= {"failed"}
    assert {statuses[i] for i in cancelled_ids} <= {"cancelled", "completed"}  # a cancel may lose the race
