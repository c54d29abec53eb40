"""A live job whose record is behind its workflow is shown as such: by `get_job_status` and on the job page.

The workflow says so in its memo while the database has not taken an attempt's end (the database outage of
tests/acceptance/test_temporal_database_outage.py sees it happen). Here the run is started with that memo set,
so the reading side is tested against the real dev server without taking the database away.
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from jobscheduler import JobRunnerFactory
from jobscheduler.registry import JobHandlerRegistry
from jobscheduler.temporal.inputs import MEMO_RECORD_BEHIND, WORKFLOW_NAME
from jobscheduler.temporal.runner import _Started
from project.accounts.models import Tenant, User

from .conftest import HEARTBEAT_TIMEOUT_MS, wait_for_status

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]

BEHIND_TEXT = "The record is behind Temporal"


@pytest.fixture
def site_on_temporal(settings, temporal_address, task_queue, temporal_worker):
    settings.JOB_RUNNER_TYPE = "temporal"
    settings.JOB_RUNNER_FALLBACK_TO_PGBOSS = False
    settings.TEMPORAL_ADDRESS = temporal_address
    settings.TEMPORAL_JOB_TASK_QUEUE = task_queue
    settings.JOBSCHEDULER = {"TEMPORAL_HEARTBEAT_TIMEOUT_SECONDS": HEARTBEAT_TIMEOUT_MS / 1000}
    JobRunnerFactory.reset()
    runner = JobRunnerFactory.get_instance()
    assert runner.runner_type == "temporal"
    return runner


def test_a_record_behind_its_workflow_is_shown_as_such(site_on_temporal, job_name):
    runner = site_on_temporal
    tenant = Tenant.objects.create(name=f"behind-{uuid.uuid4().hex[:6]}")
    user = User.objects.create_user(username=f"v-{uuid.uuid4().hex[:6]}", password="pw", tenant=tenant)
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="jobscheduler", codename="view_job")
    )
    client = Client()
    client.force_login(user)
    release = threading.Event()
    JobHandlerRegistry.register(job_name, lambda job_id, data: release.wait(20), timeout_ms=60_000)
    # Scheduled as the runner does, but the run starts with the memo a run whose record is behind has.
    plan = runner._plan(job_name, {}, tenant_id=tenant.pk)
    runner._record_created(plan)

    async def start(c):
        return await c.start_workflow(
            WORKFLOW_NAME,
            plan.job_input,
            id=plan.workflow_id,
            task_queue=runner.task_queue,
            memo={"jobId": str(plan.new_job.job_id), MEMO_RECORD_BEHIND: True},
        )

    async def with_client(fn):
        return await fn(await runner._client_ready())

    handle = runner._rpc(with_client(start))
    runner._record_start(plan, _Started(run_id=handle.result_run_id))
    job_id = str(plan.new_job.job_id)
    wait_for_status(job_id, "processing")

    status = runner.get_job_status(job_id, tenant.pk)
    assert status.status == "processing" and status.metadata["recordBehind"] is True
    page = client.get(reverse("jobscheduler:job-detail", args=[job_id])).content.decode()
    assert BEHIND_TEXT in page

    release.set()
    wait_for_status(job_id, "completed")
    assert "recordBehind" not in runner.get_job_status(job_id, tenant.pk).metadata
    page = client.get(reverse("jobscheduler:job-detail", args=[job_id])).content.decode()
    assert BEHIND_TEXT not in page


def test_a_record_that_is_not_behind_says_nothing(site_on_temporal, job_name, tenant):
    runner = site_on_temporal
    release = threading.Event()
    JobHandlerRegistry.register(job_name, lambda job_id, data: release.wait(20), timeout_ms=60_000)
    result = runner.schedule_job(job_name, {"tenantId": str(tenant)})
    wait_for_status(result.job_id, "processing")
    assert "recordBehind" not in runner.get_job_status(result.job_id, tenant).metadata
    release.set()
    wait_for_status(result.job_id, "completed")
