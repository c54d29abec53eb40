"""Real `runjobworker` processes against a real PostgreSQL, with short configured intervals."""

import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection, transaction

from jobscheduler import JobRunnerFactory
from jobscheduler.models import Job, JobDetail, QueueJob, Schedule, ScheduleRun, Worker
from tests.support.processes import FAST_SETTINGS, WorkerProcess, libpq_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


@pytest.fixture
def ledger():
    """Rows the t.ledger handler writes, one per execution, on its own connection."""
    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS test_ledger (job_id uuid, attempt int, pid int, started float8, finished float8)"
        )
        cur.execute("TRUNCATE test_ledger")

    def rows():
        with psycopg.connect(libpq_url()) as conn:
            return conn.execute("SELECT job_id, attempt, pid, started, finished FROM test_ledger").fetchall()

    return rows


def job(job_id) -> Job:
    return Job.objects.get(job_id=job_id)


def steps(job_id) -> list[tuple[str, str]]:
    return list(
        JobDetail.objects.filter(job_id=job_id).order_by("processed_at").values_list("step_name", "status")
    )


def finished(job_id) -> Job | None:
    j = job(job_id)
    return j if j.status in ("completed", "failed", "cancelled") else None


def test_immediate_job_runs_and_is_fully_recorded(runner, start_worker, tenant):
    worker = start_worker()
    res = runner.schedule_job("t.progress", {"x": 1}, tenant_id=tenant)
    done = wait_for(lambda: finished(res.job_id), message="the job to finish")
    assert done.status == "completed"
    status = runner.get_job_status(res.job_id, tenant)
    assert status.attempts == 1 and status.progress == 100.0
    assert status.created_at <= status.started_at <= status.completed_at
    assert status.duration is not None and status.duration.total_seconds() >= 0
    assert status.metadata["progressMessage"] == "saving"
    assert steps(res.job_id) == [
        ("execution_started", "processing"),
        ("load", "completed"),
        ("execution_completed", "completed"),
    ]
    result = JobDetail.objects.get(job_id=res.job_id, step_name="execution_completed").result
    assert result == {"attempt": 1, "result": {"saved": 3}}
    assert not QueueJob.objects.filter(job_id=res.job_id).exists()
    assert Worker.objects.filter(pid=worker.pid).exists()


def test_each_step_records_its_attempt_worker_and_duration_in_metadata(runner, start_worker, tenant):
    start_worker("--worker-id", "steps-worker")
    res = runner.schedule_job("t.timed", {}, tenant_id=tenant)
    assert wait_for(lambda: finished(res.job_id), message="the job to finish").status == "completed"
    rows = list(JobDetail.objects.filter(job_id=res.job_id).order_by("processed_at"))
    assert [(d.step_name, d.metadata.get("attempt")) for d in rows] == [
        ("execution_started", 1),
        ("halfway", 1),
        ("execution_failed", 1),
        ("execution_retry_scheduled", 1),
        ("execution_started", 2),
        ("halfway", 2),
        ("execution_completed", 2),
    ]
    assert {d.metadata["workerId"] for d in rows} == {"steps-worker"}
    by_step = {(d.step_name, d.metadata["attempt"]): d.metadata for d in rows}
    assert "durationMs" not in by_step[("execution_started", 1)]
    # The handler sleeps 0.3 s before its step and 0.2 s after it; the bounds leave room for a loaded machine.
    for attempt in (1, 2):
        assert 300 <= by_step[("halfway", attempt)]["durationMs"] < 5000
    assert 500 <= by_step[("execution_failed", 1)]["durationMs"] < 5000
    assert 500 <= by_step[("execution_completed", 2)]["durationMs"] < 5000
    # `result` is unchanged (what the step produced), for readers of the record written before the column.
    completed = next(d for d in rows if d.step_name == "execution_completed")
    assert completed.result == {"attempt": 2, "result": {"attempt": 2}}
    assert next(d for d in rows if d.step_name == "halfway").result == {"at": "halfway"}


def test_async_handler(runner, start_worker, tenant):
    start_worker()
    res = runner.schedule_job("t.async", {}, tenant_id=tenant)
    done = wait_for(lambda: finished(res.job_id), message="the async job")
    assert done.status == "completed" and done.metadata["progressMessage"] == "async"


def test_delayed_job_waits_for_its_time(runner, start_worker, tenant):
    start_worker()
    run_at = datetime.now(UTC) + timedelta(seconds=1.5)
    res = runner.schedule_job_at("t.noop", {}, run_at, tenant_id=tenant)
    time.sleep(1.0)
    assert job(res.job_id).status == "queued"
    wait_for(lambda: finished(res.job_id), message="the delayed job")
    started = runner.get_job_status(res.job_id, tenant).started_at
    assert run_at <= started <= run_at + timedelta(seconds=1)


def test_higher_priority_runs_first(runner, start_worker, tenant):
    low = runner.schedule_jobs("t.noop", [{}] * 5, tenant_id=tenant, priority=0)
    high = runner.schedule_jobs("t.noop", [{}] * 5, tenant_id=tenant, priority=10)
    start_worker("--concurrency", "1")
    ids = [r.job_id for r in low + high]
    wait_for(lambda: all(finished(i) for i in ids), message="all jobs")
    started = {i: runner.get_job_status(i, tenant).started_at for i in ids}
    assert max(started[r.job_id] for r in high) < min(started[r.job_id] for r in low)


def test_retries_follow_the_policy_with_backoff(runner, start_worker, tenant):
    start_worker()
    res = runner.schedule_job("t.fail", {}, tenant_id=tenant)
    done = wait_for(lambda: finished(res.job_id), timeout=20, message="retries to run out")
    assert done.status == "failed"
    assert done.metadata["attempts"] == 3
    assert done.metadata["error"] == "RuntimeError: attempt 3 failed"
    starts = [
        d.processed_at
        for d in JobDetail.objects.filter(job_id=res.job_id, step_name="execution_started").order_by(
            "processed_at"
        )
    ]
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    # FAST_RETRY: 300 ms then 600 ms, +-10% jitter, plus a little scheduling latency
    assert 0.27 <= gaps[0] <= 0.27 + 0.5, gaps
    assert 0.54 <= gaps[1] <= 0.54 + 0.6, gaps
    failures = JobDetail.objects.filter(job_id=res.job_id, step_name="execution_failed").order_by(
        "processed_at"
    )
    assert [f.retry_count for f in failures] == [0, 1, 2]
    assert (
        "Traceback" in failures[2].result["traceback"] and "always_fails" in failures[2].result["traceback"]
    )
    assert JobDetail.objects.filter(job_id=res.job_id, step_name="execution_retry_scheduled").count() == 2


def test_non_retryable_error_fails_at_once(runner, start_worker, tenant):
    start_worker()
    res = runner.schedule_job("t.nonretryable", {}, tenant_id=tenant)
    done = wait_for(lambda: finished(res.job_id), message="the job to fail")
    assert done.status == "failed" and done.metadata["attempts"] == 1
    assert done.metadata["errorType"] == "ValueError"


def test_transient_failure_then_success(runner, start_worker, tenant):
    start_worker()
    res = runner.schedule_job("t.flaky", {"succeed_on": 2}, tenant_id=tenant)
    done = wait_for(lambda: finished(res.job_id), message="the flaky job")
    assert done.status == "completed" and done.metadata["attempts"] == 2
    assert [s for s, _ in steps(res.job_id)] == [
        "execution_started",
        "execution_failed",
        "execution_retry_scheduled",
        "execution_started",
        "execution_completed",
    ]


def test_timeout_fails_the_attempt_and_frees_the_slot(runner, start_worker, tenant):
    start_worker("--concurrency", "1")
    hung = runner.schedule_job("t.hang", {}, tenant_id=tenant)
    after = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    done = wait_for(lambda: finished(hung.job_id), timeout=15, message="the hung job to time out")
    assert done.status == "failed" and done.metadata["attempts"] == 2
    assert done.metadata["errorType"] == "JobTimeout"
    assert done.metadata["error"] == "JobTimeout: Attempt exceeded its timeout of 600 ms"
    first_fail = JobDetail.objects.filter(job_id=hung.job_id, step_name="execution_failed").order_by(
        "processed_at"
    )[0]
    first_start = JobDetail.objects.filter(job_id=hung.job_id, step_name="execution_started").order_by(
        "processed_at"
    )[0]
    assert 0.6 <= (first_fail.processed_at - first_start.processed_at).total_seconds() < 1.5
    # one slot, held by a handler that never returns, and still the next job ran
    assert (
        wait_for(lambda: finished(after.job_id), message="the job behind the hung one").status == "completed"
    )


def test_cancel_running_job(runner, start_worker, tenant):
    start_worker()
    res = runner.schedule_job("t.wait_cancel", {}, tenant_id=tenant)
    wait_for(lambda: job(res.job_id).metadata.get("progress") == 10, message="the handler to start")
    asked = time.monotonic()
    assert runner.cancel_job(res.job_id, tenant)
    done = wait_for(lambda: finished(res.job_id), message="the cancellation")
    assert time.monotonic() - asked < 2
    assert done.status == "cancelled"
    assert steps(res.job_id)[-1] == ("execution_cancelled", "cancelled")
    assert not runner.cancel_job(res.job_id, tenant)


def test_malformed_rows_fail_with_a_clear_error(runner, start_worker, tenant):
    ok = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    bad_name, null_data = uuid.uuid4(), uuid.uuid4()
    with connection.cursor() as cur:
        for jid, name, meta in (
            (bad_name, "os.system", '{"data": {}}'),
            (null_data, "t.echo", '{"data": null}'),
        ):
            cur.execute(
                "INSERT INTO jobs (tenant, job_id, type, metadata, status, user_id) "
                "VALUES (%s, %s, %s, %s::jsonb, 'queued', %s)",
                [tenant, jid, name, meta, uuid.uuid4()],
            )
            cur.execute(
                "INSERT INTO jobscheduler_queue (job_id, tenant, name, priority, run_at, attempt, max_attempts, "
                "cancel_requested) VALUES (%s, %s, %s, 0, now(), 0, 3, false)",
                [jid, tenant, name],
            )
    worker = start_worker()
    for jid in (bad_name, null_data, ok.job_id):
        wait_for(lambda jid=jid: finished(jid), message=f"job {jid}")
    assert job(bad_name).status == "failed"
    assert job(bad_name).metadata["error"] == "JobHandlerNotFound: No handler registered for job: os.system"
    assert job(bad_name).metadata["attempts"] == 1
    assert job(null_data).metadata["error"] == "InvalidJobData: Job data must be a JSON object, got NoneType"
    assert job(ok.job_id).status == "completed"
    assert worker.proc.poll() is None


def test_rolled_back_job_never_runs_and_open_transaction_is_not_claimed(runner, start_worker, tenant, ledger):
    start_worker()
    with pytest.raises(RuntimeError), transaction.atomic():
        runner.schedule_job("t.ledger", {}, tenant_id=tenant)
        raise RuntimeError("rollback")
    with transaction.atomic():
        pending = runner.schedule_job("t.ledger", {}, tenant_id=tenant)
        time.sleep(1.0)  # five poll intervals: a worker that could see it would have run it
        assert ledger() == []
    wait_for(lambda: finished(pending.job_id), message="the committed job")
    assert [str(r[0]) for r in ledger()] == [pending.job_id]
    assert Job.objects.count() == 1


def test_two_workers_run_each_job_once(runner, start_worker, tenant, ledger):
    results = runner.schedule_jobs("t.ledger", [{}] * 1500, tenant_id=tenant)
    start_worker("--concurrency", "8")
    start_worker("--concurrency", "8")
    wait_for(lambda: Job.objects.filter(status="completed").count() == 1500, timeout=90, message="1500 jobs")
    rows = ledger()
    assert len(rows) == 1500
    assert {str(r[0]) for r in rows} == {r.job_id for r in results}
    assert len({r[2] for r in rows}) == 2  # both workers took part


def test_killed_worker_jobs_are_rescued(runner, start_worker, tenant, ledger):
    victim = start_worker("--concurrency", "4")
    jobs = runner.schedule_jobs("t.ledger", [{"seconds": 2}] * 4, tenant_id=tenant)
    wait_for(lambda: Job.objects.filter(status="processing").count() == 4, message="the jobs to start")
    victim.kill()
    killed_at = time.monotonic()
    start_worker("--concurrency", "4")
    wait_for(lambda: all(finished(r.job_id) for r in jobs), timeout=30, message="the rescued jobs")
    for r in jobs:
        done = job(r.job_id)
        assert done.status == "completed" and done.metadata["attempts"] == 2
        lost = JobDetail.objects.get(job_id=r.job_id, step_name="execution_failed")
        assert lost.result["error"] == "Worker lost: the lease expired without a heartbeat"
        restarted = JobDetail.objects.filter(job_id=r.job_id, step_name="execution_started").order_by(
            "-processed_at"
        )[0]
        # bound: LEASE_SECONDS + MAINTENANCE_INTERVAL_SECONDS (+ the second worker's start-up)
        bound = FAST_SETTINGS["LEASE_SECONDS"] + FAST_SETTINGS["MAINTENANCE_INTERVAL_SECONDS"] + 3
        assert (restarted.processed_at.timestamp() - time.time()) + (time.monotonic() - killed_at) < bound
    assert sorted(str(r[0]) for r in ledger()) == sorted(r.job_id for r in jobs)


def test_graceful_shutdown_finishes_running_jobs(runner, start_worker, tenant):
    worker = start_worker("--concurrency", "2")
    jobs = runner.schedule_jobs("t.sleep", [{"seconds": 1}] * 2, tenant_id=tenant)
    wait_for(lambda: Job.objects.filter(status="processing").count() == 2, message="the jobs to start")
    later = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    assert worker.terminate(timeout=15) == 0
    assert all(job(r.job_id).status == "completed" for r in jobs)
    assert job(later.job_id).status == "queued"  # no new claims once stopping
    assert not Worker.objects.filter(pid=worker.pid).exists()


def test_shutdown_timeout_releases_jobs_without_using_an_attempt(runner, start_worker, tenant):
    worker = start_worker("--concurrency", "1", "--shutdown-timeout", "0.3")
    res = runner.schedule_job("t.sleep", {"seconds": 30}, tenant_id=tenant)
    wait_for(lambda: job(res.job_id).status == "processing", message="the job to start")
    assert worker.terminate(timeout=15) == 0
    released = job(res.job_id)
    assert released.status == "queued" and released.metadata["attempts"] == 0
    queued = QueueJob.objects.get(job_id=res.job_id)
    assert queued.attempt == 0 and queued.lease_token is None
    assert steps(res.job_id)[-1] == ("execution_released", "queued")


def test_second_signal_exits_at_once(runner, start_worker, tenant):
    worker = start_worker("--concurrency", "1", "--shutdown-timeout", "60")
    res = runner.schedule_job("t.sleep", {"seconds": 30}, tenant_id=tenant)
    wait_for(lambda: job(res.job_id).status == "processing", message="the job to start")
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.signal(signal.SIGTERM)
    assert worker.wait(5) == 1


def test_cron_fires_each_tick_once_with_three_schedulers(runner, start_worker, tenant):
    # The schedulers are up before the schedule exists: on a loaded machine a worker may take seconds to start,
    # and ticks due before any scheduler runs fire once as a catch-up (tested below), which is not this test.
    for _ in range(3):
        start_worker("--concurrency", "2")
    sched = runner.schedule_recurring_job(
        "t.noop", {}, "* * * * * *", tenant_id=tenant, metadata={"origin": "cron-test"}
    )  # every second
    time.sleep(4.5)
    Schedule.objects.filter(pk=sched.job_id).update(paused=True)
    time.sleep(0.5)
    runs = list(ScheduleRun.objects.filter(schedule_id=sched.job_id).order_by("tick"))
    assert len(runs) >= 3
    ticks = [r.tick for r in runs]
    assert len(set(ticks)) == len(ticks)
    assert all((b - a) == timedelta(seconds=1) for a, b in zip(ticks, ticks[1:], strict=False)), ticks
    fired = Job.objects.filter(metadata__scheduleId=sched.job_id)
    assert fired.count() == len(runs)
    assert all(j.metadata["origin"] == "cron-test" for j in fired)
    assert {str(j.job_id) for j in fired} == {str(r.job_id) for r in runs}


def test_missed_ticks_fire_once_on_restart(runner, start_worker, tenant):
    sched = runner.schedule_recurring_job("t.noop", {}, "*/5 * * * * *", tenant_id=tenant)
    # as if every worker had been down for a minute: twelve ticks were missed
    restart = datetime.now(UTC)
    Schedule.objects.filter(pk=sched.job_id).update(next_run_at=restart - timedelta(minutes=1))
    start_worker()
    wait_for(
        lambda: ScheduleRun.objects.filter(schedule_id=sched.job_id).exists(), message="the catch-up tick"
    )
    time.sleep(1)
    missed = ScheduleRun.objects.filter(schedule_id=sched.job_id, tick__lt=restart)
    assert missed.count() == 1  # regular ticks after the restart may follow; the missed minute fired once
    assert Schedule.objects.get(pk=sched.job_id).next_run_at > restart


def test_burst_drains_and_exits(runner, start_worker, tenant):
    jobs = runner.schedule_jobs("t.noop", [{}] * 50, tenant_id=tenant)
    worker = start_worker("--burst", "--no-scheduler", wait=False)
    assert worker.wait(30) == 0
    assert all(job(r.job_id).status == "completed" for r in jobs)


def test_jobs_option_serves_a_subset(runner, start_worker, tenant):
    echo = runner.schedule_job("t.echo", {"v": 1}, tenant_id=tenant)
    other = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    start_worker("--jobs", "t.echo")
    wait_for(lambda: finished(echo.job_id), message="the served job")
    time.sleep(0.5)
    assert job(other.job_id).status == "queued"


def test_unknown_job_name_option_is_refused():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError) as err:
        call_command("runjobworker", "--jobs", "t.noop,missing")
    assert str(err.value) == "No handler registered for job: missing"


def test_default_concurrency_is_the_documented_rule(tmp_path, fast_settings):
    """Without --concurrency a worker gets 5 slots per CPU: 15 on a 3-CPU machine, 5 on a 1-CPU one."""
    for cpus, expected in (("3", 15), ("1", 5)):
        worker = WorkerProcess([], FAST_SETTINGS, tmp_path / f"cpus-{cpus}.log", {"TEST_CPU_COUNT": cpus})
        try:
            worker.wait_started()
            assert f"backend pgboss, concurrency {expected}," in worker.output()
            row = wait_for(
                lambda pid=worker.pid: Worker.objects.filter(pid=pid).first(), message="the worker row"
            )
            assert row.concurrency == expected
        finally:
            worker.kill()


def test_concurrency_help_states_the_default():
    from django.core.management import load_command_class

    from jobscheduler.conf import default_concurrency

    parser = load_command_class("jobscheduler", "runjobworker").create_parser("manage.py", "runjobworker")
    text = " ".join(parser.format_help().split())
    assert (
        "--concurrency CONCURRENCY jobs this worker runs at once, on either backend "
        f"(default: 5 per CPU; {default_concurrency()} on this machine)"
    ) in text


def test_poll_only_mode_runs_jobs_without_notify(runner, start_worker, tenant):
    start_worker(settings={"USE_LISTEN_NOTIFY": False, "POLL_INTERVAL_SECONDS": 0.3})
    res = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    assert wait_for(lambda: finished(res.job_id), timeout=10, message="a polled job").status == "completed"
