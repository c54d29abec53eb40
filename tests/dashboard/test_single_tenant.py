"""A site without tenants (REQUIRE_TENANT off, the default): work naming no tenant goes to the default tenant,
and every user with `view_job` sees it on the dashboard and in the admin; superusers start on it.

The example site is strict, so each test here turns the setting off as a site with no settings has it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

import jobscheduler
from jobscheduler.exceptions import TenantRequired
from jobscheduler.models import Job, JobStatus, Schedule
from tests.dashboard.conftest import finished_job, login

pytestmark = pytest.mark.django_db

DEFAULT_TENANT = uuid.UUID("00000000-0000-0000-0000-000000000001")


@pytest.fixture
def single_tenant(settings):
    settings.JOBSCHEDULER = {**settings.JOBSCHEDULER, "REQUIRE_TENANT": False}
    return settings


@pytest.fixture
def staff_viewer(make_user):
    """Staff with only `view_job`, and no tenant: the user of a site that has none."""
    user = make_user(None, "view_job")
    user.is_staff = True
    user.save()
    return user


def test_schedule_calls_without_a_tenant_use_the_default_tenant(single_tenant):
    now = jobscheduler.schedule_job("generate-invoice", {"billingCycleId": "c-1"})
    later = jobscheduler.schedule_job_at("generate-invoice", {}, timezone.now() + timedelta(hours=1))
    cron = jobscheduler.schedule_recurring_job("generate-invoice", {}, "0 0 * * *")
    assert Job.objects.get(job_id=now.job_id).tenant == DEFAULT_TENANT
    assert Job.objects.get(job_id=later.job_id).tenant == DEFAULT_TENANT
    assert Schedule.objects.get(id=cron.job_id).tenant == DEFAULT_TENANT
    status = jobscheduler.get_job_status(now.job_id)
    assert status is not None and status.status == JobStatus.QUEUED
    assert jobscheduler.cancel_job(later.job_id) is True
    assert Job.objects.get(job_id=later.job_id).status == JobStatus.CANCELLED


def test_strict_site_still_requires_a_tenant_everywhere():
    with pytest.raises(TenantRequired) as err:
        jobscheduler.schedule_job("generate-invoice", {})
    assert str(err.value) == 'A tenant is required: pass tenant_id=... or put "tenantId" in the job data.'
    with pytest.raises(TenantRequired):
        jobscheduler.get_job_status(uuid.uuid4())
    assert not Job.objects.exists()


def test_staff_user_with_view_job_sees_the_default_tenant(single_tenant, staff_viewer, acme):
    job = Job.objects.get(job_id=jobscheduler.schedule_job("generate-invoice", {"n": 1}).job_id)
    done = finished_job(acme)  # another tenant's job stays out of sight
    client = login(staff_viewer)
    history = client.get(reverse("jobscheduler:job-list"))
    assert history.status_code == 200
    assert [b.record.job_id for b in history.context["table"].page.object_list] == [job.job_id]
    assert "Default tenant" in history.content.decode()
    overview = client.get(reverse("jobscheduler:overview"))
    assert overview.context["tenant"] == DEFAULT_TENANT
    assert overview.context["overview"].counts["queued"] == 1
    page = client.get(reverse("jobscheduler:job-detail", args=[job.job_id]))
    assert page.status_code == 200
    assert str(job.job_id) in page.content.decode()
    assert client.get(reverse("jobscheduler:job-detail", args=[done.job_id])).status_code == 404


def test_staff_user_with_view_job_finds_the_job_in_the_admin(single_tenant, staff_viewer, acme):
    job = Job.objects.get(job_id=jobscheduler.schedule_job("generate-invoice", {"n": 1}).job_id)
    other = finished_job(acme, type="acme-only-type")
    client = login(staff_viewer)
    changelist = client.get(reverse("admin:jobscheduler_job_changelist"))
    assert changelist.status_code == 200
    assert [j.job_id for j in changelist.context["cl"].result_list] == [job.job_id]
    change = client.get(reverse("admin:jobscheduler_job_change", args=[job.job_id]))
    assert change.status_code == 200
    assert "generate-invoice" in change.content.decode()
    assert client.get(reverse("admin:jobscheduler_job_change", args=[other.job_id])).status_code == 302


def test_without_view_job_the_dashboard_is_forbidden(single_tenant, make_user):
    jobscheduler.schedule_job("generate-invoice", {})
    assert login(make_user(None)).get(reverse("jobscheduler:job-list")).status_code == 403


def test_superuser_starts_on_the_default_tenant_and_can_pick_others(single_tenant, make_user, acme):
    mine = Job.objects.get(job_id=jobscheduler.schedule_job("generate-invoice", {}).job_id)
    acme_job = finished_job(acme)
    client = login(make_user(None, superuser=True))
    first = client.get(reverse("jobscheduler:job-list"))
    assert first.context["tenant"] == DEFAULT_TENANT
    assert [b.record.job_id for b in first.context["table"].page.object_list] == [mine.job_id]
    choices = dict(first.context["tenant_choices"])
    assert choices[DEFAULT_TENANT] == "Default tenant"
    assert choices[acme.tenant] == "Acme"
    picked = client.get(reverse("jobscheduler:job-list"), {"tenant": str(acme.tenant)})
    assert [b.record.job_id for b in picked.context["table"].page.object_list] == [acme_job.job_id]


def test_a_user_linked_to_a_tenant_still_sees_only_that_tenant(single_tenant, make_user, acme):
    jobscheduler.schedule_job("generate-invoice", {})
    acme_job = finished_job(acme)
    client = login(make_user(acme, "view_job"))
    history = client.get(reverse("jobscheduler:job-list"))
    assert [b.record.job_id for b in history.context["table"].page.object_list] == [acme_job.job_id]


def test_admin_needs_the_permission_too(single_tenant, make_user):
    jobscheduler.schedule_job("generate-invoice", {})
    user = make_user(None)
    user.is_staff = True
    user.save()
    assert login(user).get(reverse("admin:jobscheduler_job_changelist")).status_code == 403
    user.user_permissions.add(
        Permission.objects.get(codename="view_job", content_type__app_label="jobscheduler")
    )
    assert login(user).get(reverse("admin:jobscheduler_job_changelist")).status_code == 200
