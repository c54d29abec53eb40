"""Handlers the integration and acceptance tests run, registered in the test process and in worker subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime

import psycopg

from jobscheduler import RetryPolicy, current_job, job_handler

FAST_RETRY = RetryPolicy(
    max_attempts=3, backoff_coefficient=2.0, initial_interval_ms=300, max_interval_ms=5000
)


@job_handler("t.noop", retry=RetryPolicy(max_attempts=1))
def noop(job_id, data):
    return None


@job_handler("t.echo")
def echo(job_id, data):
    return data


@job_handler("t.progress")
def progress(job_id, data):
    job = current_job()
    job.progress(25, "loading")
    job.step("load", "completed", {"rows": 3})
    job.progress(75, "saving")
    return {"saved": 3}


@job_handler("t.fail", retry=FAST_RETRY)
def always_fails(job_id, data):
    raise RuntimeError(f"attempt {current_job().attempt} failed")


@job_handler("t.nonretryable", retry=RetryPolicy(max_attempts=5, non_retryable_errors=["ValueError"]))
def non_retryable(job_id, data):
    raise ValueError("bad input, retrying will not help")


@job_handler("t.flaky", retry=RetryPolicy(max_attempts=3, initial_interval_ms=100, max_interval_ms=100))
def flaky(job_id, data):
    if current_job().attempt < data.get("succeed_on", 2):
        raise ConnectionError("transient")
    return {"attempt": current_job().attempt}


@job_handler(
    "t.hang", timeout_ms=600, retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100)
)
def hang(job_id, data):
    time.sleep(3600)


@job_handler("t.wait_cancel", timeout_ms=60_000)
def wait_cancel(job_id, data):
    job = current_job()
    job.progress(10, "waiting to be cancelled")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job.raise_if_cancelled()
        time.sleep(0.02)
    return "never cancelled"


@job_handler("t.odd_result", retry=RetryPolicy(max_attempts=1))
def odd_result(job_id, data):
    """A result that is not JSON: an object and a NaN."""
    return {"when": datetime(2024, 1, 1), "ratio": float("nan")}


@job_handler("t.overrun", timeout_ms=500, retry=RetryPolicy(max_attempts=1))
def overrun(job_id, data):
    """Runs past its 500 ms timeout (for 2 s, in short sleeps), then would return."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "too late"


@job_handler("t.timed", retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100))
def timed(job_id, data):
    """Sleeps known times around a step of its own, and fails its first attempt: steps with known durations."""
    time.sleep(0.3)
    current_job().step("halfway", "completed", {"at": "halfway"})
    time.sleep(0.2)
    if current_job().attempt == 1:
        raise ConnectionError("first attempt fails")
    return {"attempt": current_job().attempt}


@job_handler("t.sleep", timeout_ms=120_000)
def sleep(job_id, data):
    time.sleep(float(data.get("seconds", 1)))
    return {"slept": data.get("seconds", 1)}


@job_handler("t.async")
async def async_job(job_id, data):
    await asyncio.sleep(0.01)
    current_job().progress(60, "async")
    return {"async": True}


@job_handler("t.exit", retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100))
def exit_process(job_id, data):
    os._exit(1)


@job_handler("t.killself", retry=RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100))
def kill_self(job_id, data):
    os.kill(os.getpid(), signal.SIGKILL)


@job_handler("t.ledger", timeout_ms=60_000, retry=RetryPolicy(max_attempts=10, initial_interval_ms=100))
def ledger(job_id, data):
    """Records each execution on its own connection, so a test can check every job ran and how often."""
    started = time.time()
    seconds = float(data.get("seconds", 0))
    if seconds:
        time.sleep(seconds)
    with psycopg.connect(os.environ["LEDGER_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO test_ledger (job_id, attempt, pid, started, finished) VALUES (%s, %s, %s, %s, %s)",
            (job_id, current_job().attempt, os.getpid(), started, time.time()),
        )
    return None


# -- acceptance battery (tests/acceptance/): executions written to test_ledger on their own connection --------


@job_handler("t.slot", timeout_ms=60_000, retry=RetryPolicy(max_attempts=10, initial_interval_ms=100))
def slot(job_id, data):
    """Holds a slot for data["seconds"]. Its ledger row is written when it starts and completed when it ends, so
    the flow-control tests see every execution, also one whose worker is killed in the middle."""
    started = time.time()
    attempt = current_job().attempt
    with psycopg.connect(os.environ["LEDGER_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO test_ledger (job_id, attempt, pid, started, finished) VALUES (%s, %s, %s, %s, NULL)",
            (job_id, attempt, os.getpid(), started),
        )
        time.sleep(float(data.get("seconds", 0)))
        conn.execute(
            "UPDATE test_ledger SET finished = %s WHERE job_id = %s AND attempt = %s AND pid = %s",
            (time.time(), job_id, attempt, os.getpid()),
        )


def write_ledger(job_id, started: float, finished: float | None) -> None:
    """One ledger row per execution; `finished` is NULL for an execution that never completes on purpose."""
    with psycopg.connect(os.environ["LEDGER_DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO test_ledger (job_id, attempt, pid, started, finished) VALUES (%s, %s, %s, %s, %s)",
            (job_id, current_job().attempt, os.getpid(), started, finished),
        )


POISON_RETRY = RetryPolicy(max_attempts=3, initial_interval_ms=100, max_interval_ms=100)
CRASH_RETRY = RetryPolicy(max_attempts=2, initial_interval_ms=100, max_interval_ms=100)


@job_handler("acc.poison_raise", retry=POISON_RETRY)
def poison_raise(job_id, data):
    """Always raises: each attempt is recorded, then fails."""
    write_ledger(job_id, time.time(), None)
    raise RuntimeError(f"poison attempt {current_job().attempt}")


@job_handler("acc.poison_exit", retry=CRASH_RETRY)
def poison_exit(job_id, data):
    """Takes its whole worker down with os._exit(1), every attempt."""
    write_ledger(job_id, time.time(), None)
    os._exit(1)


@job_handler("acc.poison_kill", retry=CRASH_RETRY)
def poison_kill(job_id, data):
    """Kills its own worker process with SIGKILL, every attempt."""
    write_ledger(job_id, time.time(), None)
    os.kill(os.getpid(), signal.SIGKILL)


@job_handler("acc.hostile", retry=RetryPolicy(max_attempts=1))
def hostile(job_id, data):
    """Fails with markup in its error message (the dashboard must render it inert)."""
    raise ValueError("<script>alert('err')</script> " + str(data.get("note", "")))


# -- workflows: each execution in test_ledger, results carry what the step saw of its dependencies ----------


@job_handler("wf.step", timeout_ms=60_000, retry=RetryPolicy(max_attempts=1))
def workflow_step(job_id, data):
    """Sleeps `seconds`, fails when `fail` is set (or, with `fail_unless_retry`, unless it is a retry), and
    returns its `n` with the results of its completed dependencies."""
    from jobscheduler.models import Job

    started = time.time()
    time.sleep(float(data.get("seconds", 0)))
    job = current_job()
    seen = job.dependency_results
    retry = bool(data.get("fail_unless_retry")) and bool(Job.objects.get(job_id=job_id).meta.get("retryOf"))
    if data.get("fail") or (data.get("fail_unless_retry") and not retry):
        write_ledger(job_id, started, None)
        raise RuntimeError(f"step {data.get('n')} failed on purpose")
    write_ledger(job_id, started, time.time())
    return {"n": data.get("n"), "seen": seen, "seen_order": list(seen)}
