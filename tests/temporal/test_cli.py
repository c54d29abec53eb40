"""The seed's three workflow interfaces, driven by a client that is not ours: the real `temporal` CLI.

`updateProgress` becomes the job's progress (the `jobs` row, `get_job_status`, the job page), `getJobState`
answers with the seed's step names, and `cancelJob` cancels the job exactly as our own `cancel_job` does: the
job ends `cancelled` with the given reason and `cancelledBy`, also when the handler honours `is_cancelled` and
returns normally.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from jobscheduler import current_job
from jobscheduler.models import JobDetail
from jobscheduler.registry import JobHandlerRegistry
from project.accounts.models import Tenant, User

from .conftest import job_row, steps, temporal_cli, wait_for_status, wait_until

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


def cli(address: str, *args: str) -> subprocess.CompletedProcess:
    """One `temporal` CLI command against the session's dev server; fails the test with its output on error."""
    command = [str(temporal_cli()), *args, "--address", address, "--namespace", "default"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done


def query_state(address: str, workflow_id: str) -> dict:
    done = cli(
        address, "workflow", "query", "--workflow-id", workflow_id, "--name", "getJobState", "-o", "json"
    )
    answer = json.loads(done.stdout)
    return answer["queryResult"][0]


def signal(address: str, workflow_id: str, name: str, payload: dict) -> None:
    cli(
        address,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        "--input",
        json.dumps(payload),
    )


@pytest.fixture
def page_client(db) -> tuple[Client, uuid.UUID]:
    """A signed-in user of a tenant of the example site who may view jobs, and that tenant's id."""
    tenant = Tenant.objects.create(name=f"cli-{uuid.uuid4().hex[:6]}")
    user = User.objects.create_user(username=f"viewer-{uuid.uuid4().hex[:6]}", password="pw", tenant=tenant)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="jobscheduler", codename="view_job")
    )
    client = Client()
    client.force_login(user)
    return client, tenant.pk


def test_progress_query_and_cancel_through_the_temporal_cli(runner, job_name, temporal_address, page_client):
    client, tenant = page_client
    returned_normally = threading.Event()

    def patient(job_id, data):
        job = current_job()
        job.progress(10, "started")
        deadline = time.monotonic() + 30
        while not job.is_cancelled and time.monotonic() < deadline:
            time.sleep(0.05)
        returned_normally.set()
        return {"stopped": job.is_cancelled}  # honours the cancel, returns normally

    JobHandlerRegistry.register(job_name, patient, timeout_ms=60_000)
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wf = result.external_id
    wait_until(lambda: job_row(result.job_id).meta.get("progress") == 10)

    state = query_state(temporal_address, wf)
    assert state["step"] == "executing" and state["progress"] == 10 and state["message"] == "started"
    assert state["startedAt"] and state["completedAt"] is None and state["attempt"] == 1

    signal(temporal_address, wf, "updateProgress", {"progress": 50, "message": "Halfway done"})

    meta = wait_until(lambda: (m := job_row(result.job_id).meta)["progress"] == 50 and m)
    assert meta["progressMessage"] == "Halfway done"
    status = runner.get_job_status(result.job_id, tenant)
    assert status.status == "processing" and status.progress == 50
    assert status.metadata["progressMessage"] == "Halfway done"
    page = client.get(reverse("jobscheduler:job-detail", args=[result.job_id])).content.decode()
    assert "50%" in page and "Halfway done" in page
    state = query_state(temporal_address, wf)
    assert state["progress"] == 50 and state["message"] == "Halfway done" and state["step"] == "executing"

    signal(
        temporal_address,
        wf,
        "cancelJob",
        {"reason": "User requested cancellation", "cancelledBy": "admin@example.com"},
    )

    job = wait_for_status(result.job_id, "cancelled", timeout=15)
    assert returned_normally.wait(5), "the handler saw is_cancelled and returned"
    assert job.meta["cancelReason"] == "User requested cancellation"
    assert job.meta["cancelledBy"] == "admin@example.com"
    assert job.meta["completedAt"] and job.meta["progress"] == 50
    assert steps(result.job_id) == [
        ("execution_started", "processing"),
        ("execution_cancelled", "cancelled"),
    ]
    detail = JobDetail.objects.get(job_id=result.job_id, step_name="execution_cancelled")
    assert detail.result == {
        "attempt": 1,
        "reason": "User requested cancellation",
        "cancelledBy": "admin@example.com",
    }
    status = runner.get_job_status(result.job_id, tenant)
    assert status.status == "cancelled" and status.error == "User requested cancellation"
    page = client.get(reverse("jobscheduler:job-detail", args=[result.job_id])).content.decode()
    assert "User requested cancellation" in page and "admin@example.com" in page
    assert "Cancelled by" in page

    state = wait_until(lambda: (s := query_state(temporal_address, wf))["completedAt"] and s)
    assert state["step"] == "cancelled"


def test_cancel_through_our_api_records_the_same(runner, job_name, tenant):
    """The API's cancel is the signal: the same status, reason and `cancelledBy` as the CLI's."""
    JobHandlerRegistry.register(job_name, lambda job_id, data: _wait_for_cancel(), timeout_ms=60_000)
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wait_for_status(result.job_id, "processing")

    assert runner.cancel_job(
        result.job_id, tenant, reason="User requested cancellation", cancelled_by="admin@example.com"
    )

    job = wait_for_status(result.job_id, "cancelled", timeout=15)
    assert (job.meta["cancelReason"], job.meta["cancelledBy"]) == (
        "User requested cancellation",
        "admin@example.com",
    )
    detail = JobDetail.objects.get(job_id=result.job_id, step_name="execution_cancelled")
    assert detail.result == {
        "attempt": 1,
        "reason": "User requested cancellation",
        "cancelledBy": "admin@example.com",
    }


def _wait_for_cancel() -> None:
    job = current_job()
    deadline = time.monotonic() + 30
    while not job.is_cancelled and time.monotonic() < deadline:
        time.sleep(0.05)
