"""Cancel, retry and schedule actions go through the runner that owns the job, and say what they did."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from jobscheduler.models import Job, JobStatus, QueueJob, Schedule
from jobscheduler.runners.factory import JobRunnerFactory
from project.accounts.models import Tenant, User
from tests.dashboard.conftest import finished_job

pytestmark = pytest.mark.django_db


def enqueue(tenant, name: str = "generate-invoice") -> Job:
    result = JobRunnerFactory.get_instance().schedule_job(name, {"invoice": 1}, tenant_id=tenant.tenant)
    return Job.objects.get(job_id=result.job_id)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_cancel_a_queued_job(operator_client, acme):
    job = enqueue(acme)
    response = operator_client.post(reverse("jobscheduler:job-cancel", args=[job.job_id]), follow=True)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert not QueueJob.objects.filter(job_id=job.job_id).exists()
    assert f"Cancelled job {job.job_id}." in messages_of(response)
    assert response.redirect_chain[-1][0] == reverse("jobscheduler:job-detail", args=[job.job_id])


def test_cancel_records_the_user_who_asked(operator_client, operator, acme):
    job = enqueue(acme)
    operator_client.post(reverse("jobscheduler:job-cancel", args=[job.job_id]))
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED
    assert job.meta["cancelledBy"] == operator.username
    assert job.meta["cancelReason"] == "Cancelled by request"
    body = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).content.decode()
    assert "Cancelled by" in body and operator.username in body


def test_cancel_a_finished_job_is_refused(operator_client, acme):
    job = finished_job(acme)
    response = operator_client.post(reverse("jobscheduler:job-cancel", args=[job.job_id]), follow=True)
    assert Job.objects.get(pk=job.pk).status == JobStatus.COMPLETED
    assert "already finished" in messages_of(response)[0]


def test_retry_creates_a_new_job_with_the_same_data(operator_client, acme):
    job = finished_job(acme, JobStatus.FAILED)
    response = operator_client.post(reverse("jobscheduler:job-retry", args=[job.job_id]))
    new = Job.objects.for_tenant(acme.tenant).exclude(pk=job.pk).get()
    assert response["Location"] == reverse("jobscheduler:job-detail", args=[new.job_id])
    assert new.type == job.type
    assert new.meta["data"] == job.meta["data"]
    assert new.meta["retryOf"] == str(job.job_id)
    assert new.status == JobStatus.QUEUED
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_retry_of_a_running_job_is_refused(operator_client, acme):
    job = enqueue(acme)
    response = operator_client.post(reverse("jobscheduler:job-retry", args=[job.job_id]), follow=True)
    assert Job.objects.for_tenant(acme.tenant).count() == 1
    assert "only finished jobs" in messages_of(response)[0]


def test_bulk_cancel_and_retry(operator_client, acme):
    queued = [enqueue(acme) for _ in range(3)]
    done = finished_job(acme, JobStatus.FAILED)
    url = reverse("jobscheduler:job-bulk")
    back = reverse("jobscheduler:job-list") + "?status=live"
    response = operator_client.post(
        url, {"action": "cancel", "job_ids": [str(j.job_id) for j in [*queued, done]], "next": back}
    )
    assert response["Location"] == back
    assert set(Job.objects.filter(pk__in=[j.pk for j in queued]).values_list("status", flat=True)) == {
        "cancelled"
    }
    response = operator_client.post(
        url, {"action": "retry", "job_ids": [str(done.job_id), str(queued[0].job_id)]}, follow=True
    )
    assert "Retried 2 job(s); 0 not finished." in messages_of(response)
    assert Job.objects.for_tenant(acme.tenant).filter(status=JobStatus.QUEUED).count() == 2


def test_bulk_without_selection(operator_client, acme):
    response = operator_client.post(reverse("jobscheduler:job-bulk"), {"action": "cancel"}, follow=True)
    assert messages_of(response) == ["No jobs selected."]


def test_schedule_pause_resume_and_run_now(operator_client, acme):
    result = JobRunnerFactory.get_instance().schedule_recurring_job(
        "expired-credits", {"x": 1}, "*/5 * * * *", tenant_id=acme.tenant
    )
    schedule = Schedule.objects.get(pk=result.job_id)

    def act(action: str):
        return operator_client.post(
            reverse("jobscheduler:schedule-action", args=[schedule.id, action]), follow=True
        )

    act("pause")
    assert Schedule.objects.get(pk=schedule.pk).paused
    assert "Resume" in operator_client.get(reverse("jobscheduler:schedules")).content.decode()
    act("resume")
    assert not Schedule.objects.get(pk=schedule.pk).paused
    response = act("run")
    job = Job.objects.for_tenant(acme.tenant).get(type="expired-credits")
    assert Schedule.objects.get(pk=schedule.pk).last_job_id == job.job_id
    assert f"started job {job.job_id}" in messages_of(response)[0]
    assert (
        operator_client.post(
            reverse("jobscheduler:schedule-action", args=[schedule.id, "explode"])
        ).status_code
        == 404
    )


def test_setupdemo_is_idempotent():
    call_command("setupdemo", stdout=io.StringIO())
    jobs = Job.objects.count()
    schedules = Schedule.objects.count()
    call_command("setupdemo", stdout=io.StringIO())
    assert Job.objects.count() == jobs > 0
    assert Schedule.objects.count() == schedules == 8
    assert set(Tenant.objects.values_list("name", flat=True)) == {"Acme", "Globex"}
    acme_admin = User.objects.get(username="acme-admin")
    assert acme_admin.check_password("acme")
    assert acme_admin.has_perm("jobscheduler.cancel_job") and acme_admin.has_perm("jobscheduler.retry_job")
    assert User.objects.get(username="admin").is_superuser
    per_tenant = {
        t: Job.objects.for_tenant(t).count() for t in Tenant.objects.values_list("tenant", flat=True)
    }
    assert all(n > 0 for n in per_tenant.values())
