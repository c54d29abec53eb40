"""The health view and `runjobworker --check` against the real database and real worker processes."""

import os
import subprocess
import sys
import uuid

import pytest
from django.db import connection

from jobscheduler import JobRunnerFactory
from tests.support import processes
from tests.support.processes import FAST_SETTINGS, ROOT, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

HEALTH_URL = "/ops/jobs/health/"


def health(client) -> tuple[int, dict]:
    response = client.get(HEALTH_URL)
    return response.status_code, response.json()


def run_check(*args: str) -> subprocess.CompletedProcess:
    """`manage.py runjobworker --check` as a probe runs it: a fresh process on the test database."""
    import json

    env = dict(
        os.environ,
        DATABASE_URL=processes.test_database_url(),
        JOBSCHEDULER=json.dumps(FAST_SETTINGS),
        DJANGO_SETTINGS_MODULE="project.settings",
    )
    return subprocess.run(
        [sys.executable, "manage.py", "runjobworker", "--check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_healthy_when_nothing_waits(client, fast_settings):
    status, body = health(client)
    assert status == 200
    assert body["healthy"] is True
    assert body["problems"] == []
    assert body["database"] == {"reachable": True, "error": None}
    assert body["queues"] == []
    assert body["temporal"] is None


def test_waiting_job_without_a_live_worker_is_unhealthy(client, fast_settings, start_worker, tenant):
    start_worker("--jobs", "t.echo")  # alive, but serves another queue
    runner = JobRunnerFactory.get_instance()
    runner.schedule_job("t.noop", {}, tenant_id=tenant)
    runner.schedule_job("t.noop", {}, tenant_id=tenant)
    status, body = health(client)
    assert status == 503
    assert body["problems"] == ["queue t.noop: 2 job(s) waiting and no live worker serves it"]
    [queue] = body["queues"]
    assert (queue["name"], queue["waiting"], queue["running"], queue["live_workers"]) == ("t.noop", 2, 0, 0)
    assert len(body["workers"]["pgboss"]) == 1


def test_served_queue_is_healthy_and_drains(client, fast_settings, start_worker, tenant):
    start_worker("--jobs", "t.noop")
    runner = JobRunnerFactory.get_instance()
    ids = [runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id for _ in range(3)]
    wait_for(lambda: health(client)[1]["queues"] == [], timeout=30, message=f"{ids} done")
    status, body = health(client)
    assert status == 200 and body["healthy"] is True


def test_oldest_waiting_job_over_the_limit_is_unhealthy(client, fast_settings, start_worker, tenant):
    fast_settings.JOBSCHEDULER = {**fast_settings.JOBSCHEDULER, "HEALTH_MAX_WAIT_SECONDS": 60}
    start_worker("--jobs", "t.sleep", "--concurrency", "1")
    runner = JobRunnerFactory.get_instance()
    busy = runner.schedule_job("t.sleep", {"seconds": 20}, tenant_id=tenant).job_id
    wait_for(lambda: health(client)[1]["queues"][0]["running"] == 1, timeout=30, message="first job running")
    waiting = runner.schedule_job("t.sleep", {"seconds": 0}, tenant_id=tenant).job_id
    with connection.cursor() as cur:  # its one slot is busy: the second job waits; make it long due
        cur.execute(
            "UPDATE jobscheduler_queue SET run_at = now() - interval '10 minutes' WHERE job_id = %s",
            [waiting],
        )
    status, body = health(client)
    assert status == 503, body
    [queue] = body["queues"]
    assert (queue["waiting"], queue["running"], queue["live_workers"]) == (1, 1, 1), (busy, body)
    assert 600 <= queue["oldest_waiting_seconds"] < 700
    [problem] = body["problems"]
    assert problem.startswith("queue t.sleep: oldest waiting job has waited 6")
    assert problem.endswith("s (HEALTH_MAX_WAIT_SECONDS is 60)")


def test_unreachable_database_is_503(client, fast_settings):
    original = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict["PORT"] = "1"
    connection.settings_dict["HOST"] = "127.0.0.1"
    try:
        status, body = health(client)
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
    assert status == 503
    assert body["healthy"] is False
    assert body["database"]["reachable"] is False
    assert "127.0.0.1" in body["database"]["error"]
    assert body["problems"] == [f"database unreachable: {body['database']['error']}"]


def test_unreachable_temporal_is_503(client, fast_settings, settings):
    settings.JOB_RUNNER_TYPE = "temporal"
    settings.TEMPORAL_ADDRESS = "127.0.0.1:1"
    settings.JOBSCHEDULER = {**settings.JOBSCHEDULER, "TEMPORAL_CONNECT_TIMEOUT_SECONDS": 1.0}
    JobRunnerFactory.reset()
    status, body = health(client)
    assert status == 503
    assert body["temporal"] == {
        "reachable": False,
        "task_queue": "alga-jobs",
        "live_workers": 0,
        "polled": False,
    }
    assert body["problems"] == ["Temporal at 127.0.0.1:1 does not answer"]


def test_check_exits_0_for_a_live_worker_and_1_once_it_is_gone(fast_settings, start_worker):
    worker = start_worker("--worker-id", "probe-test-worker")
    wait_for(lambda: run_check("--worker-id", "probe-test-worker").returncode == 0, timeout=30)
    alive = run_check("--worker-id", "probe-test-worker")
    assert alive.stdout.strip() == "alive: probe-test-worker"
    on_host = run_check()  # no id: any worker of this host
    assert on_host.returncode == 0 and "probe-test-worker" in on_host.stdout
    worker.kill()
    wait_for(lambda: run_check("--worker-id", "probe-test-worker").returncode == 1, timeout=30)
    dead = run_check("--worker-id", "probe-test-worker")
    assert dead.stderr.strip() == (
        "no heartbeat from worker probe-test-worker in the last 3s (WORKER_EXPIRY_SECONDS)"
    )


def test_check_of_an_unknown_worker_fails(fast_settings):
    result = run_check("--worker-id", f"nobody-{uuid.uuid4().hex[:6]}")
    assert result.returncode == 1
    assert result.stderr.startswith("no heartbeat from worker nobody-")
