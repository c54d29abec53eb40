"""Temporal: a task queue nobody polls is reported (issue 10, item 5), read from the server's own description of
the task queue's pollers (`DescribeTaskQueue`), not from our workers table."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.runners.factory import JobRunnerFactory
from jobscheduler.temporal.runner import TemporalJobRunner

from .conftest import InProcessWorker, wait_for_status, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lonely_queue() -> str:
    return f"nobody-polls-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def site(settings, temporal_address, lonely_queue):
    """A Temporal site (no fallback) whose task queue no worker polls."""
    settings.JOB_RUNNER_TYPE = "temporal"
    settings.JOB_RUNNER_FALLBACK_TO_PGBOSS = False
    settings.TEMPORAL_ADDRESS = temporal_address
    settings.TEMPORAL_JOB_TASK_QUEUE = lonely_queue
    return settings


def _fix(queue: str, address: str) -> str:
    return (
        f"start `python manage.py runjobworker --backend temporal` with TEMPORAL_JOB_TASK_QUEUE={queue} "
        f"(scheduler and workers must use the same task queue, TEMPORAL_ADDRESS {address} and "
        f"TEMPORAL_NAMESPACE default)"
    )


def test_a_polled_task_queue_is_served(runner):
    # The session's worker may have started just now: its first polls reach the server within moments.
    wait_until(lambda: runner.unserved_queues() == [], timeout=15)
    assert runner.is_healthy() is True


def test_a_task_queue_nobody_polls_is_reported_until_a_worker_polls_it(
    site, temporal_address, lonely_queue, job_name, tenant
):
    JobHandlerRegistry.register(job_name, lambda job_id, data: "served")
    runner = JobRunnerFactory.get_instance()
    assert isinstance(runner, TemporalJobRunner)
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})

    (unserved,) = wait_until(lambda: [q for q in runner.unserved_queues() if q.waiting >= 1], timeout=30)
    assert (unserved.runner_type, unserved.queue, unserved.fix) == (
        "temporal",
        lonely_queue,
        _fix(lonely_queue, temporal_address),
    )
    assert unserved.message.startswith(f"No live temporal worker serves task queue '{lonely_queue}' (")
    assert runner.is_healthy() is False

    user = get_user_model().objects.create_user(
        username=f"op-{uuid.uuid4().hex[:6]}", password="pw", is_superuser=True
    )
    client = Client()
    client.force_login(user)
    cache.clear()
    response = client.get(reverse("jobscheduler:health"))
    assert response.status_code == 503
    assert [q["queue"] for q in response.json()["unserved"]] == [lonely_queue]
    overview = client.get(reverse("jobscheduler:overview")).content.decode()
    assert f'data-unserved="{lonely_queue}"' in overview
    assert f"TEMPORAL_JOB_TASK_QUEUE={lonely_queue}" in overview

    worker = InProcessWorker(temporal_address, lonely_queue)
    worker.start()
    try:
        wait_for_status(result.job_id, "completed", timeout=60)
        assert runner.unserved_queues() == []
        assert runner.is_healthy() is True
        cache.clear()
        assert client.get(reverse("jobscheduler:health")).status_code == 200
    finally:
        worker.stop()
