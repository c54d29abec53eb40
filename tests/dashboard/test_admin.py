"""The Django admin: read-only, scoped to the viewer's tenant, with cancel/retry/schedule actions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from jobscheduler.ids import new_id
from jobscheduler.models import Job, JobStatus, Schedule
from jobscheduler.runners.factory import JobRunnerFactory
from tests.dashboard.conftest import finished_job, login
from tests.factories import JobDetailFactory, JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(operator):
    operator.is_staff = True
    operator.save()
    operator.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_jobdetail", "view_schedule"], content_type__app_label="jobscheduler"
        )
    )
    return login(operator)


def test_job_changelist_is_scoped_and_slim(staff, acme, globex):
    mine = finished_job(acme)
    JobFactory(tenant=globex.tenant, type="globex-only-type")
    response = staff.get(reverse("admin:jobscheduler_job_changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    assert mine.type in body
    assert "globex-only-type" not in body
    assert "42.0 s" in body
    assert "Cancel selected jobs" in body


def test_admin_lists_whole_job_ids_with_the_distinguishing_tail_marked(staff, acme):
    first, second = (JobFactory(tenant=acme.tenant, job_id=new_id()) for _ in range(2))
    detail = JobDetailFactory(tenant=acme.tenant, job=first)
    jobs_page = staff.get(reverse("admin:jobscheduler_job_changelist")).content.decode()
    steps_page = staff.get(reverse("admin:jobscheduler_jobdetail_changelist")).content.decode()
    for job in (first, second):
        text = str(job.job_id)
        assert f'font-family: monospace">{text[:24]}<b>{text[24:]}</b></span>' in jobs_page
    assert f"{str(detail.job_id)[:24]}<b>{str(detail.job_id)[24:]}</b>" in steps_page


def test_job_change_page_is_read_only_with_steps(staff, acme, globex):
    job = finished_job(acme, JobStatus.FAILED)
    body = staff.get(reverse("admin:jobscheduler_job_change", args=[job.job_id])).content.decode()
    assert "execution_failed" in body
    assert 'name="type"' not in body  # no editable inputs
    other = finished_job(globex)
    assert staff.get(reverse("admin:jobscheduler_job_change", args=[other.job_id])).status_code == 302


def test_admin_search_by_job_id_and_filter(staff, acme):
    job = finished_job(acme)
    finished_job(acme, type="invoice_zip")
    url = reverse("admin:jobscheduler_job_changelist")
    assert str(job.job_id) in staff.get(url, {"q": str(job.job_id)}).content.decode()
    filtered = staff.get(url, {"type": "invoice_zip"})
    assert filtered.context["cl"].result_count == 1


def test_admin_cancel_and_retry_actions_use_the_runner(staff, acme, globex):
    queued = Job.objects.get(
        job_id=JobRunnerFactory.get_instance()
        .schedule_job("generate-invoice", {}, tenant_id=acme.tenant)
        .job_id
    )
    failed = finished_job(acme, JobStatus.FAILED)
    url = reverse("admin:jobscheduler_job_changelist")
    staff.post(url, {"action": "cancel_selected", "_selected_action": [queued.job_id]})
    assert Job.objects.get(pk=queued.pk).status == JobStatus.CANCELLED
    staff.post(url, {"action": "retry_selected", "_selected_action": [failed.job_id]})
    assert Job.objects.for_tenant(acme.tenant).filter(status=JobStatus.QUEUED, type=failed.type).count() == 1


def test_admin_actions_cannot_reach_other_tenants(staff, globex):
    theirs = JobFactory(tenant=globex.tenant, status=JobStatus.QUEUED)
    staff.post(
        reverse("admin:jobscheduler_job_changelist"),
        {"action": "cancel_selected", "_selected_action": [theirs.job_id]},
    )
    assert Job.objects.get(pk=theirs.pk).status == JobStatus.QUEUED


def test_admin_actions_hidden_without_permission(acme, make_user):
    user = make_user(acme, "view_job")
    user.is_staff = True
    user.save()
    body = login(user).get(reverse("admin:jobscheduler_job_changelist")).content.decode()
    assert "Cancel selected jobs" not in body


def test_job_detail_and_schedule_admin(staff, acme, globex):
    detail = JobDetailFactory(tenant=acme.tenant, job=finished_job(acme), step_name="render PDF")
    JobDetailFactory(tenant=globex.tenant, job=finished_job(globex), step_name="globex-step")
    body = staff.get(reverse("admin:jobscheduler_jobdetail_changelist")).content.decode()
    assert detail.step_name in body
    assert "globex-step" not in body
    result = JobRunnerFactory.get_instance().schedule_recurring_job(
        "expired-credits", {}, "*/5 * * * *", tenant_id=acme.tenant
    )
    Schedule.objects.create(
        tenant=globex.tenant, key="globex-key", job_name="x", cron="* * * * *", user_id=globex.tenant
    )
    url = reverse("admin:jobscheduler_schedule_changelist")
    body = staff.get(url).content.decode()
    assert "expired-credits" in body
    assert "globex-key" not in body
    staff.post(url, {"action": "pause_selected", "_selected_action": [result.job_id]})
    assert Schedule.objects.get(pk=result.job_id).paused
    staff.post(url, {"action": "run_selected_now", "_selected_action": [result.job_id]})
    assert Job.objects.for_tenant(acme.tenant).filter(type="expired-credits").count() == 1


def test_admin_redacts_secrets(staff, acme):
    job = finished_job(
        acme, metadata={"data": {"password": "hunter2", "ok": "shown"}, "singletonKey": "inv-1"}
    )
    JobDetailFactory(job=job, tenant=acme.tenant, step_name="login", result={"accessToken": "tok-77"})
    body = staff.get(reverse("admin:jobscheduler_job_change", args=[job.job_id])).content.decode()
    assert "hunter2" not in body and "tok-77" not in body
    assert "shown" in body and "inv-1" in body
