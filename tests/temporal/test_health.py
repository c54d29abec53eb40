"""The health view on Temporal against the session's dev server: a task queue nobody polls is unhealthy, as
Temporal's own pollers say; the queue the session's worker polls is healthy."""

from __future__ import annotations

import uuid

import pytest

from jobscheduler import JobRunnerFactory

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def on_temporal(settings, temporal_address):
    settings.JOB_RUNNER_TYPE = "temporal"
    settings.JOB_RUNNER_FALLBACK_TO_PGBOSS = False
    settings.TEMPORAL_ADDRESS = temporal_address
    JobRunnerFactory.reset()
    yield settings
    JobRunnerFactory.reset()


def test_a_task_queue_nobody_polls_is_503(client, on_temporal):
    queue = f"nobody-{uuid.uuid4().hex[:8]}"
    on_temporal.TEMPORAL_JOB_TASK_QUEUE = queue
    response = client.get("/ops/jobs/health/")
    body = response.json()
    assert response.status_code == 503
    assert body["temporal"]["reachable"] is True and body["temporal"]["polled"] is False
    [problem] = body["problems"]
    assert problem.startswith(f"No live temporal worker serves task queue {queue!r}")


def test_the_polled_task_queue_is_healthy(client, on_temporal, task_queue, temporal_worker):
    on_temporal.TEMPORAL_JOB_TASK_QUEUE = task_queue
    response = client.get("/ops/jobs/health/")
    body = response.json()
    assert body["temporal"]["reachable"] is True and body["temporal"]["polled"] is True, body
    assert response.status_code == 200 and body["problems"] == []
