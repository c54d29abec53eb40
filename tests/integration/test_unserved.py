"""pgboss: jobs waiting that no live worker serves are reported (issue 10, item 5), with real worker processes.

A pgboss worker serves the job names it lists in `jobscheduler_workers.job_names` while its heartbeat is fresh
(younger than WORKER_EXPIRY_SECONDS). A ready job of a name nobody serves stays `queued`: `unserved_queues()`,
`is_healthy()`, the health view and the overview say so, naming the job and the fix.
"""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobscheduler import JobRunnerFactory
from jobscheduler.models import Job, Worker
from jobscheduler.runners.base import UnservedQueue
from tests.support.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

NOOP_FIX = "start `python manage.py runjobworker` on this database with this handler registered (without --jobs, or with --jobs t.noop)"


@pytest.fixture
def runner(fast_settings):
    return JobRunnerFactory.get_instance()


@pytest.fixture
def operator_client():
    user = get_user_model().objects.create_user(
        username=f"op-{uuid.uuid4().hex[:6]}", password="pw", is_superuser=True
    )
    client = Client()
    client.force_login(user)
    return client


def _health(client):
    cache.clear()  # the overview's runner indicator is cached for a few seconds
    response = client.get(reverse("jobscheduler:health"))
    return response.status_code, response.json()


def test_a_job_nobody_serves_is_reported_until_a_worker_serves_it(
    runner, start_worker, tenant, operator_client
):
    assert runner.unserved_queues() == [] and runner.is_healthy()
    later = runner.schedule_job_at("t.noop", {}, timezone.now() + timedelta(hours=1), tenant_id=tenant)
    assert runner.unserved_queues() == []  # not due yet: nothing waits
    first = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    runner.schedule_job("t.noop", {}, tenant_id=tenant)

    unserved = runner.unserved_queues()
    assert unserved == [UnservedQueue(runner_type="pgboss", queue="t.noop", waiting=2, fix=NOOP_FIX)]
    assert unserved[0].message == f"No live pgboss worker serves job 't.noop' (2 waiting): {NOOP_FIX}"
    assert runner.is_healthy() is False

    status, body = _health(operator_client)
    assert status == 503 and body["healthy"] is False and body["reachable"] is True
    assert body["unserved"] == [unserved[0].as_dict()]
    overview = operator_client.get(reverse("jobscheduler:overview")).content.decode()
    assert 'data-unserved="t.noop"' in overview
    assert "2 jobs wait but no live pgboss worker serves job <code>t.noop</code>." in overview
    assert "runjobworker" in overview

    # A worker that serves other job names does not help; nor does one whose heartbeat is stale.
    start_worker("--jobs", "t.echo")
    Worker.objects.create(
        id="stale", backend="pgboss", host="h", pid=1, concurrency=1, job_names=["t.noop"],
        started_at=timezone.now() - timedelta(hours=1), heartbeat_at=timezone.now() - timedelta(minutes=10),
    )  # fmt: skip
    assert [q.queue for q in runner.unserved_queues()] == ["t.noop"]

    start_worker()
    wait_for(lambda: Job.objects.get(job_id=first.job_id).status == "completed", message="the served job")
    wait_for(lambda: runner.unserved_queues() == [], message="nothing left unserved")
    assert runner.is_healthy() is True
    assert _health(operator_client) == (200, {**body, "healthy": True, "unserved": []})
    assert Job.objects.get(job_id=later.job_id).status == "queued"


def test_the_health_view_needs_the_view_permission(client, runner):
    assert client.get(reverse("jobscheduler:health")).status_code == 302
    user = get_user_model().objects.create_user(username=f"nobody-{uuid.uuid4().hex[:6]}", password="pw")
    client.force_login(user)
    assert client.get(reverse("jobscheduler:health")).status_code == 403
