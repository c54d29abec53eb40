"""The Temporal -> pgboss fallback is decided per call and recovers by itself, against a dev server of the test's
own that the test stops and starts again (same address, state kept in a file across restarts).

- a site that started while Temporal was down runs its jobs on pgboss and returns to Temporal once it answers;
- a site on Temporal whose start call fails hands that job to pgboss (`fallbackReason`, shown on the dashboard);
- a Temporal job's cancel goes to Temporal, or fails with RunnerUnavailable while it is down: never to pgboss.
"""

from __future__ import annotations

import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from jobscheduler.exceptions import RunnerUnavailable
from jobscheduler.models import Job, QueueJob
from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.runners.factory import JobRunnerFactory
from jobscheduler.temporal.runner import TemporalJobRunner

from .conftest import DevServer, InProcessWorker, wait_for_status

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

REPROBE_SECONDS = 1.0
#: A start against a stopped server fails after the SDK's own retries (about 6 s); generous for a loaded machine.
FAILED_START_BOUND_SECONDS = 30.0


@pytest.fixture
def server(tmp_path):
    dev = DevServer(tmp_path, db_file=tmp_path / "temporal.db")
    yield dev
    dev.stop()


@pytest.fixture
def site(settings, server):
    """A site configured for Temporal (the test's own server) with the fallback on, and a short re-probe."""
    settings.JOB_RUNNER_TYPE = "temporal"
    settings.JOB_RUNNER_FALLBACK_TO_PGBOSS = True
    settings.TEMPORAL_ADDRESS = server.address
    settings.TEMPORAL_JOB_TASK_QUEUE = f"fallback-{uuid.uuid4().hex[:8]}"
    settings.JOBSCHEDULER = {
        "TEMPORAL_CONNECT_TIMEOUT_SECONDS": 1.0,
        "TEMPORAL_REPROBE_SECONDS": REPROBE_SECONDS,
    }
    return settings


@pytest.fixture
def handler(job_name):
    JobHandlerRegistry.register(job_name, lambda job_id, data: {"ran": True})
    return job_name


def _assert_fell_back(result, address):
    rows = list(Job.objects.filter(job_id=result.job_id))
    assert len(rows) == 1, "the pending Temporal row is replaced, not left beside the pgboss one"
    job = rows[0]
    assert (job.runner_type, job.status, job.external_id) == ("pgboss", "queued", result.job_id)
    reason = job.meta["fallbackReason"]
    assert address in reason and "unreachable" in reason, reason
    assert QueueJob.objects.filter(job_id=result.job_id).exists()
    return job


def _assert_on_temporal(result):
    job = Job.objects.get(job_id=result.job_id)
    assert (job.runner_type, job.status, job.external_id) == ("temporal", "queued", f"job-{result.job_id}")
    assert "fallbackReason" not in job.meta
    assert not QueueJob.objects.filter(job_id=result.job_id).exists()
    return job


def _superuser_client() -> Client:
    user = get_user_model().objects.create_user(
        username=f"root-{uuid.uuid4().hex[:6]}", password="pw", is_superuser=True
    )
    client = Client()
    client.force_login(user)
    return client


def test_a_site_started_while_temporal_was_down_returns_to_temporal(site, server, handler, tenant):
    runner = JobRunnerFactory.get_instance()
    assert runner.fallback_active and runner.runner_type == "pgboss"
    assert server.address in runner.fallback_reason

    down = runner.schedule_job(handler, {"tenantId": str(tenant)})
    _assert_fell_back(down, server.address)

    server.start()
    time.sleep(REPROBE_SECONDS * 1.5)
    up = runner.schedule_job(handler, {"tenantId": str(tenant)})
    _assert_on_temporal(up)
    assert not runner.fallback_active and runner.runner_type == "temporal" and runner.fallback_reason is None

    worker = InProcessWorker(server.address, site.TEMPORAL_JOB_TASK_QUEUE)
    worker.start()
    try:
        assert wait_for_status(up.job_id, "completed", timeout=60).runner_type == "temporal"
    finally:
        worker.stop()


def test_a_failed_start_falls_back_for_that_call_and_the_site_returns(site, server, handler, tenant):
    server.start()
    runner = JobRunnerFactory.get_instance()
    assert not runner.fallback_active and runner.runner_type == "temporal"
    _assert_on_temporal(runner.schedule_job(handler, {"tenantId": str(tenant)}))

    server.stop()
    started = time.monotonic()
    failed_start = runner.schedule_job(handler, {"tenantId": str(tenant)}, metadata={"origin": "test"})
    assert time.monotonic() - started < FAILED_START_BOUND_SECONDS
    job = _assert_fell_back(failed_start, server.address)
    assert job.meta["origin"] == "test" and job.meta["data"] == {"tenantId": str(tenant)}
    assert runner.fallback_active and runner.runner_type == "pgboss"

    # Within the cool-down Temporal is not asked again: the next job goes to pgboss at once.
    started = time.monotonic()
    _assert_fell_back(runner.schedule_job(handler, {"tenantId": str(tenant)}), server.address)
    assert time.monotonic() - started < 1.0

    # Visible: the overview's runner indicator and the job page name the fallback and its reason.
    client = _superuser_client()
    overview = client.get(reverse("jobscheduler:overview")).content.decode()
    assert "Temporal is unreachable, so new jobs run on pgboss." in overview
    assert server.address in overview
    page = client.get(reverse("jobscheduler:job-detail", args=[failed_start.job_id]), {"tenant": tenant})
    assert "data-fallback-reason" in page.content.decode() and server.address in page.content.decode()

    server.start()
    time.sleep(REPROBE_SECONDS * 1.5)
    _assert_on_temporal(runner.schedule_job(handler, {"tenantId": str(tenant)}))
    assert not runner.fallback_active


def test_a_temporal_jobs_cancel_goes_to_temporal_or_fails_loudly(site, server, handler, tenant):
    server.start()
    runner = JobRunnerFactory.get_instance()
    # No worker polls this task queue: the job waits in Temporal as `queued`.
    queued = runner.schedule_job(handler, {"tenantId": str(tenant)})
    _assert_on_temporal(queued)
    client = _superuser_client()
    client.get(reverse("jobscheduler:job-list"), {"tenant": tenant})  # the superuser picks the tenant
    cancel_url = reverse("jobscheduler:job-cancel", args=[queued.job_id])

    server.stop()
    with pytest.raises(RunnerUnavailable) as err:
        JobRunnerFactory.for_runner_type("temporal")
    assert str(err.value).startswith(f"Temporal at {server.address} is unreachable: "), err.value
    with pytest.raises(RunnerUnavailable):
        runner.cancel_job(queued.job_id, tenant)
    response = client.post(cancel_url, {"next": "/"}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert shown == [f"Job {queued.job_id} could not be cancelled: {err.value}"]
    job = Job.objects.get(job_id=queued.job_id)
    assert job.status == "queued" and "cancelReason" not in job.meta  # nothing was written

    server.start()
    time.sleep(REPROBE_SECONDS * 1.5)
    temporal = JobRunnerFactory.for_runner_type("temporal")
    assert isinstance(temporal, TemporalJobRunner)
    response = client.post(cancel_url, {"next": "/"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [f"Cancelled job {queued.job_id}."]
    assert Job.objects.get(job_id=queued.job_id).status == "cancelled"
    assert "cancelJob" in _signals(temporal, queued.external_id)


def _signals(runner: TemporalJobRunner, workflow_id: str) -> list[str]:
    """The names of the signals Temporal recorded for the workflow: proof the cancel reached Temporal."""

    async def fetch():
        client = await runner._client_ready()
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        return [
            e.workflow_execution_signaled_event_attributes.signal_name
            for e in history.events
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]

    return runner._rpc(fetch())
