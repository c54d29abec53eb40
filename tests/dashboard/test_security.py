"""Tenant isolation, permissions, CSRF and escaping: what the dashboard must never get wrong."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.urls import reverse

from jobscheduler.models import Job, JobStatus, Schedule
from tests.dashboard.conftest import finished_job, login
from tests.factories import JobDetailFactory, JobFactory

pytestmark = pytest.mark.django_db

PAGES = ["overview", "job-list", "schedules", "workers"]


@pytest.fixture
def globex_job(globex) -> Job:
    return finished_job(globex, JobStatus.FAILED)


@pytest.fixture
def globex_live_job(globex) -> Job:
    return JobFactory(tenant=globex.tenant, status=JobStatus.QUEUED)


@pytest.fixture
def globex_schedule(globex) -> Schedule:
    return Schedule.objects.create(
        tenant=globex.tenant,
        key="globex-nightly",
        job_name="expired-credits",
        cron="0 0 * * *",
        user_id=globex.tenant,
    )


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_is_sent_to_login(client, name):
    response = client.get(reverse(f"jobscheduler:{name}"))
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


def test_anonymous_actions_are_sent_to_login(client, globex_job):
    response = client.post(reverse("jobscheduler:job-cancel", args=[globex_job.job_id]))
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)
    assert Job.objects.get(pk=globex_job.pk).status == JobStatus.FAILED


@pytest.mark.parametrize("name", PAGES)
def test_viewing_needs_view_permission(acme, make_user, name):
    client = login(make_user(acme, "cancel_job", "retry_job"))
    assert client.get(reverse(f"jobscheduler:{name}")).status_code == 403


def test_detail_needs_view_permission(acme, make_user):
    job = finished_job(acme)
    client = login(make_user(acme))
    assert client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).status_code == 403


def test_cancel_and_retry_need_their_permissions(acme, viewer):
    live = JobFactory(tenant=acme.tenant, status=JobStatus.QUEUED)
    done = finished_job(acme)
    client = login(viewer)
    assert client.post(reverse("jobscheduler:job-cancel", args=[live.job_id])).status_code == 403
    assert client.post(reverse("jobscheduler:job-retry", args=[done.job_id])).status_code == 403
    bulk = reverse("jobscheduler:job-bulk")
    assert client.post(bulk, {"action": "cancel", "job_ids": [live.job_id]}).status_code == 403
    assert client.post(bulk, {"action": "retry", "job_ids": [done.job_id]}).status_code == 403
    assert Job.objects.get(pk=live.pk).status == JobStatus.QUEUED
    assert Job.objects.for_tenant(acme.tenant).count() == 2
    body = client.get(reverse("jobscheduler:job-detail", args=[live.job_id])).content.decode()
    assert "Cancel job" not in body


def test_schedule_actions_need_change_schedule(acme, viewer):
    schedule = Schedule.objects.create(
        tenant=acme.tenant, key="k", job_name="expired-credits", cron="* * * * *", user_id=acme.tenant
    )
    client = login(viewer)
    url = reverse("jobscheduler:schedule-action", args=[schedule.id, "pause"])
    assert client.post(url).status_code == 403
    assert not Schedule.objects.get(pk=schedule.pk).paused


def test_other_tenants_job_is_not_found(operator_client, globex_job, globex_live_job):
    assert (
        operator_client.get(reverse("jobscheduler:job-detail", args=[globex_job.job_id])).status_code == 404
    )
    assert (
        operator_client.post(reverse("jobscheduler:job-cancel", args=[globex_live_job.job_id])).status_code
        == 404
    )
    assert (
        operator_client.post(reverse("jobscheduler:job-retry", args=[globex_job.job_id])).status_code == 404
    )
    assert Job.objects.get(pk=globex_live_job.pk).status == JobStatus.QUEUED
    assert Job.objects.filter(tenant=globex_job.tenant).count() == 2


def test_other_tenants_schedule_is_not_found(operator_client, globex_schedule):
    for action in ("pause", "resume", "run"):
        url = reverse("jobscheduler:schedule-action", args=[globex_schedule.id, action])
        assert operator_client.post(url).status_code == 404
    assert not Schedule.objects.get(pk=globex_schedule.pk).paused


def test_bulk_ignores_other_tenants_jobs(operator_client, acme, globex_live_job):
    mine = JobFactory(tenant=acme.tenant, status=JobStatus.QUEUED)
    response = operator_client.post(
        reverse("jobscheduler:job-bulk"),
        {"action": "cancel", "job_ids": [str(globex_live_job.job_id), "junk"]},
    )
    assert response.status_code == 302
    assert Job.objects.get(pk=globex_live_job.pk).status == JobStatus.QUEUED
    assert Job.objects.get(pk=mine.pk).status == JobStatus.QUEUED


def test_user_without_tenant_sees_nothing(make_user, acme):
    finished_job(acme)
    client = login(make_user(None, "view_job"))
    response = client.get(reverse("jobscheduler:job-list"))
    assert response.status_code == 200
    assert "not linked to a tenant" in response.content.decode()
    assert len(response.context["table"].page.object_list) == 0


def test_superuser_picks_a_tenant_and_it_sticks(make_user, acme, globex):
    acme_job = finished_job(acme)
    globex_job = finished_job(globex)
    client = login(make_user(None, superuser=True))
    first = client.get(reverse("jobscheduler:overview"))
    choices = dict(first.context["tenant_choices"])
    assert choices[acme.tenant] == "Acme"
    assert choices[globex.tenant] == "Globex"
    client.get(reverse("jobscheduler:overview"), {"tenant": str(globex.tenant)})
    assert client.get(reverse("jobscheduler:job-detail", args=[globex_job.job_id])).status_code == 200
    assert client.get(reverse("jobscheduler:job-detail", args=[acme_job.job_id])).status_code == 404


def test_ordinary_user_cannot_pick_a_tenant(operator_client, globex, globex_job):
    response = operator_client.get(reverse("jobscheduler:job-list"), {"tenant": str(globex.tenant)})
    assert [b.record.job_id for b in response.context["table"].page.object_list] == []
    assert (
        operator_client.get(reverse("jobscheduler:job-detail", args=[globex_job.job_id])).status_code == 404
    )


@pytest.mark.parametrize(
    ("url_name", "args"),
    [("job-cancel", "live"), ("job-retry", "done"), ("job-bulk", None), ("schedule-action", "schedule")],
)
def test_actions_require_csrf(acme, operator, url_name, args):
    live = JobFactory(tenant=acme.tenant, status=JobStatus.QUEUED)
    done = finished_job(acme)
    schedule = Schedule.objects.create(
        tenant=acme.tenant, key="k", job_name="expired-credits", cron="* * * * *", user_id=acme.tenant
    )
    url_args = {"live": [live.job_id], "done": [done.job_id], "schedule": [schedule.id, "pause"], None: []}[
        args
    ]
    client = login(operator, csrf=True)
    response = client.post(
        reverse(f"jobscheduler:{url_name}", args=url_args), {"action": "cancel", "job_ids": [live.job_id]}
    )
    assert response.status_code == 403
    assert Job.objects.get(pk=live.pk).status == JobStatus.QUEUED
    assert not Schedule.objects.get(pk=schedule.pk).paused
    assert Job.objects.for_tenant(acme.tenant).count() == 2


def test_actions_refuse_get(operator_client, acme):
    live = JobFactory(tenant=acme.tenant, status=JobStatus.QUEUED)
    assert operator_client.get(reverse("jobscheduler:job-cancel", args=[live.job_id])).status_code == 405
    assert Job.objects.get(pk=live.pk).status == JobStatus.QUEUED


def test_action_redirect_stays_on_site(operator_client, acme):
    live = JobFactory(tenant=acme.tenant, status=JobStatus.CANCELLED)
    response = operator_client.post(
        reverse("jobscheduler:job-cancel", args=[live.job_id]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("jobscheduler:job-detail", args=[live.job_id])


SCRIPT = "<script>alert(1)</script>"


def test_job_text_is_escaped_everywhere(operator_client, acme):
    job = finished_job(
        acme,
        JobStatus.FAILED,
        type=SCRIPT,
        external_id=SCRIPT,
        metadata={"data": {"note": SCRIPT}, "error": SCRIPT, "progressMessage": SCRIPT, SCRIPT: 1},
    )
    JobDetailFactory(
        job=job,
        tenant=acme.tenant,
        step_name=SCRIPT,
        status=JobStatus.FAILED,
        result={"error": SCRIPT, "traceback": SCRIPT},
    )
    JobDetailFactory(
        job=job,
        tenant=acme.tenant,
        step_name="execution_failed",
        status=JobStatus.FAILED,
        result={"error": SCRIPT, "errorType": SCRIPT, "traceback": SCRIPT},
    )
    pages = [
        reverse("jobscheduler:overview"),
        reverse("jobscheduler:job-list"),
        reverse("jobscheduler:job-detail", args=[job.job_id]),
        reverse("jobscheduler:job-list") + "?type=" + SCRIPT,
    ]
    for url in pages:
        body = operator_client.get(url).content.decode()
        assert SCRIPT not in body, url
        assert "&lt;script&gt;" in body, url
