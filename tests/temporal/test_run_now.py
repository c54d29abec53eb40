"""Run-now of a recurring schedule is one implementation (JobRunner.trigger_schedule) for both backends: the run
is its own job linked to the schedule (`scheduleId`, `scheduleKey`, `triggeredManually`), and the schedule row
records it (`last_job_id`, `last_run_at`, a fresh `updated_at`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobscheduler.models import Job, Schedule
from jobscheduler.queue.runner import PgBossJobRunner
from jobscheduler.registry import JobHandlerRegistry

pytestmark = [pytest.mark.temporal, pytest.mark.django_db(transaction=True)]


@pytest.fixture(params=["pgboss", "temporal"])
def backend(request):
    if request.param == "pgboss":
        return PgBossJobRunner()
    return request.getfixturevalue("runner")


def test_run_now_links_the_run_to_its_schedule_and_touches_the_schedule(
    backend, job_name, tenant, other_tenant
):
    JobHandlerRegistry.register(job_name, lambda job_id, data: "ran")
    made = backend.schedule_recurring_job(
        job_name, {"tenantId": str(tenant), "n": 1}, "0 0 1 1 *", metadata={"origin": "billing"}
    )
    try:
        long_ago = timezone.now() - timedelta(days=3)
        Schedule.objects.filter(pk=made.job_id).update(updated_at=long_ago, last_run_at=None)
        before = timezone.now()

        fired = backend.trigger_schedule(made.job_id, tenant)

        schedule = Schedule.objects.get(pk=made.job_id)
        job = Job.objects.get(job_id=fired.job_id)
        assert job.runner_type == backend.runner_type
        assert job.meta["scheduleId"] == made.job_id
        assert job.meta["scheduleKey"] == schedule.key == f"{job_name}:{tenant}"
        assert job.meta["triggeredManually"] is True
        assert job.meta["origin"] == "billing" and job.meta["data"] == {"tenantId": str(tenant), "n": 1}
        assert schedule.last_job_id == job.job_id
        assert schedule.last_run_at >= before
        assert schedule.updated_at >= before
        assert backend.trigger_schedule(made.job_id, other_tenant) is None  # another tenant's schedule
    finally:
        backend.cancel_job(made.job_id, tenant)
