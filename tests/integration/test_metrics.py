"""Prometheus metrics after a known workload: a real worker's own endpoint (`--metrics-port`) and the site's
database-derived view."""

import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobscheduler import JobRunnerFactory
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a scrape, keyed by its name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def scrape_worker(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return samples(response.read().decode())


def scrape_view(client) -> dict:
    response = client.get("/ops/jobs/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


def test_worker_counts_outcomes_run_time_and_lag(fast_settings, start_worker, tenant):
    """The `queue` label is the job's queue (t.echo runs in "emails", the others in "default")."""
    port = free_port()
    start_worker("--jobs", "t.echo,t.fail,t.sleep", "--metrics-port", str(port))
    runner = JobRunnerFactory.get_instance()
    echo = [
        runner.schedule_job("t.echo", {"n": i}, tenant_id=tenant, queue="emails").job_id for i in range(3)
    ]
    fail = runner.schedule_job("t.fail", {}, tenant_id=tenant).job_id  # 3 attempts: retry, retry, failed
    sleep = runner.schedule_job("t.sleep", {"seconds": 0.5}, tenant_id=tenant).job_id

    def done() -> bool:
        found = scrape_worker(port)
        return (
            value(found, "jobscheduler_jobs_total", queue="emails", type="t.echo", outcome="completed") == 3
            and value(found, "jobscheduler_jobs_total", queue="default", type="t.fail", outcome="failed") == 1
            and value(found, "jobscheduler_jobs_total", queue="default", type="t.sleep", outcome="completed")
            == 1
        )

    wait_for(done, timeout=60, interval=0.3, message=f"jobs {echo}, {fail}, {sleep} recorded")
    found = scrape_worker(port)
    assert value(found, "jobscheduler_jobs_total", queue="default", type="t.fail", outcome="retry") == 2
    assert not [
        k for k in found if k[0] == "jobscheduler_jobs_total" and dict(k[1])["outcome"] == "cancelled"
    ]
    duration = "jobscheduler_job_duration_seconds"
    assert value(found, f"{duration}_count", queue="emails", type="t.echo", outcome="completed") == 3
    assert value(found, f"{duration}_count", queue="default", type="t.fail", outcome="retry") == 2
    slept = value(found, f"{duration}_sum", queue="default", type="t.sleep", outcome="completed")
    assert 0.5 <= slept < 10
    assert (
        value(found, f"{duration}_bucket", queue="default", type="t.sleep", outcome="completed", le="0.25")
        == 0
    )
    lag = "jobscheduler_queue_lag_seconds"
    assert value(found, f"{lag}_count", queue="emails", type="t.echo") == 3
    assert value(found, f"{lag}_count", queue="default", type="t.fail") == 3  # each attempt started once
    # No job ids or tenants in any label.
    label_names = {name for key in found if key[0].startswith("jobscheduler_") for name, _ in key[1]}
    assert label_names <= {"queue", "type", "outcome", "le"}


def test_tenant_label_only_when_switched_on(fast_settings, start_worker, tenant):
    port = free_port()
    start_worker("--jobs", "t.echo", "--metrics-port", str(port), settings={"METRICS_TENANT_LABEL": True})
    JobRunnerFactory.get_instance().schedule_job("t.echo", {}, tenant_id=tenant)
    key = {"queue": "default", "type": "t.echo", "tenant": str(tenant), "outcome": "completed"}
    wait_for(lambda: value(scrape_worker(port), "jobscheduler_jobs_total", **key) == 1, timeout=30)


def test_rescued_lease_is_counted_by_the_worker_that_rescued_it(fast_settings, start_worker, tenant):
    victim = start_worker("--jobs", "t.sleep")
    runner = JobRunnerFactory.get_instance()
    job_id = runner.schedule_job("t.sleep", {"seconds": 30}, tenant_id=tenant).job_id
    wait_for(lambda: runner.get_job_status(job_id, tenant).status == "processing", timeout=30)
    victim.kill()
    port = free_port()
    start_worker(
        "--jobs", "t.echo", "--metrics-port", str(port)
    )  # serves another queue; its maintenance rescues
    wait_for(
        lambda: value(scrape_worker(port), "jobscheduler_rescued_leases_total", outcome="retry") == 1,
        timeout=30,
    )


def test_view_reports_cluster_gauges_from_the_database(client, fast_settings, start_worker, tenant):
    start_worker("--jobs", "t.sleep", "--concurrency", "1")
    runner = JobRunnerFactory.get_instance()
    runner.schedule_job("t.sleep", {"seconds": 30}, tenant_id=tenant)
    wait_for(
        lambda: value(scrape_view(client), "jobscheduler_queue_running_jobs", queue="default") == 1,
        timeout=30,
    )
    runner.schedule_job("t.sleep", {"seconds": 0}, tenant_id=tenant)  # its one slot is busy: this one waits
    for _ in range(2):
        runner.schedule_job("t.noop", {}, tenant_id=tenant, queue="bulk")  # nobody serves t.noop
    found = scrape_view(client)
    assert value(found, "jobscheduler_queue_waiting_jobs", queue="default") == 1
    assert value(found, "jobscheduler_queue_running_jobs", queue="default") == 1
    assert value(found, "jobscheduler_queue_waiting_jobs", queue="bulk") == 2
    assert value(found, "jobscheduler_queue_running_jobs", queue="bulk") == 0
    assert 0 <= value(found, "jobscheduler_queue_oldest_waiting_seconds", queue="bulk") < 30
    assert value(found, "jobscheduler_live_workers", backend="pgboss") == 1
    assert value(found, "jobscheduler_live_workers", backend="temporal") == 0
    # The view reports the database, not this process's own collectors.
    assert not [k for k in found if k[0].startswith(("process_", "python_", "jobscheduler_jobs"))]


def test_metrics_port_in_use_is_refused_before_the_worker_starts(fast_settings):
    from django.core.management import CommandError, call_command

    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError) as raised:
            call_command("runjobworker", "--metrics-port", str(port))
    assert str(raised.value) == f"--metrics-port {port}: Address already in use"
