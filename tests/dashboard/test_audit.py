"""The operator audit log: one entry per action from the dashboard, the admin and the command line, saying who,
from where, what and on how many; shown on the job page and the audit page, each tenant seeing its own."""

from __future__ import annotations

import getpass
import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from jobscheduler.models import AuditEntry, Job, JobStatus, Schedule
from jobscheduler.runners.factory import JobRunnerFactory
from tests.dashboard.conftest import finished_job, login

pytestmark = pytest.mark.django_db


def enqueue(tenant) -> Job:
    result = JobRunnerFactory.get_instance().schedule_job(
        "generate-invoice", {"n": 1}, tenant_id=tenant.tenant
    )
    return Job.objects.get(job_id=result.job_id)


def entries() -> list[tuple]:
    """Every entry, oldest first, as (source, action, target, count, job_id)."""
    return [
        (e.source, e.action, e.target, e.count, e.job_id)
        for e in AuditEntry.objects.order_by("at", "id").all()
    ]


def only_entry() -> AuditEntry:
    [entry] = AuditEntry.objects.all()
    return entry


@pytest.fixture
def staff(operator):
    operator.is_staff = True
    operator.save()
    operator.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_schedule", "view_auditentry"], content_type__app_label="jobscheduler"
        )
    )
    return login(operator)


def test_dashboard_cancel_and_retry_are_recorded(operator_client, operator, acme):
    job = enqueue(acme)
    operator_client.post(reverse("jobscheduler:job-cancel", args=[job.job_id]))
    entry = only_entry()
    assert (entry.source, entry.action, entry.target, entry.count, entry.job_id) == (
        "dashboard",
        "cancel",
        str(job.job_id),
        1,
        job.job_id,
    )
    assert (entry.actor, entry.actor_id, entry.tenant) == (operator.username, str(operator.pk), acme.tenant)
    assert entry.at is not None

    failed = finished_job(acme, JobStatus.FAILED)
    operator_client.post(reverse("jobscheduler:job-retry", args=[failed.job_id]))
    new = Job.objects.for_tenant(acme.tenant).get(metadata__retryOf=str(failed.job_id))
    retry = AuditEntry.objects.get(action="retry")
    assert (retry.job_id, retry.count, retry.detail) == (failed.job_id, 1, {"newJobId": str(new.job_id)})


def test_refused_retry_is_recorded_with_count_0(operator_client, acme):
    running = enqueue(acme)
    operator_client.post(reverse("jobscheduler:job-retry", args=[running.job_id]))
    assert entries() == [("dashboard", "retry", str(running.job_id), 0, running.job_id)]


def test_dashboard_bulk_actions_record_how_many(operator_client, acme):
    queued = [enqueue(acme) for _ in range(3)]
    done = finished_job(acme, JobStatus.FAILED)
    selected = [str(j.job_id) for j in [*queued, done]]
    operator_client.post(reverse("jobscheduler:job-bulk"), {"action": "cancel", "job_ids": selected})
    bulk = only_entry()
    assert (bulk.action, bulk.count, bulk.target, bulk.job_id) == (
        "bulk_cancel",
        3,
        "4 selected job(s)",
        None,
    )
    assert sorted(bulk.detail["jobIds"]) == sorted(selected) and bulk.detail["skipped"] == 1

    operator_client.post(reverse("jobscheduler:job-bulk"), {"action": "retry", "job_ids": selected[:2]})
    retried = AuditEntry.objects.get(action="bulk_retry")
    assert (retried.count, retried.detail["skipped"], len(retried.detail["newJobIds"])) == (2, 0, 2)


def test_dashboard_schedule_actions_are_recorded(operator_client, acme):
    result = JobRunnerFactory.get_instance().schedule_recurring_job(
        "expired-credits", {}, "*/5 * * * *", tenant_id=acme.tenant
    )
    schedule = Schedule.objects.get(pk=result.job_id)
    for action in ("pause", "resume", "run"):
        operator_client.post(reverse("jobscheduler:schedule-action", args=[schedule.id, action]))
    run_job = Job.objects.for_tenant(acme.tenant).get(type="expired-credits")
    assert entries() == [
        ("dashboard", "pause_schedule", schedule.key, 1, None),
        ("dashboard", "resume_schedule", schedule.key, 1, None),
        ("dashboard", "run_schedule", schedule.key, 1, run_job.job_id),
    ]
    assert AuditEntry.objects.get(action="run_schedule").detail == {
        "scheduleId": str(schedule.id),
        "newJobId": str(run_job.job_id),
    }


def test_admin_actions_are_recorded_per_tenant(staff, operator, acme, globex, make_user):
    queued = enqueue(acme)
    failed = finished_job(acme, JobStatus.FAILED)
    url = reverse("admin:jobscheduler_job_changelist")
    staff.post(url, {"action": "cancel_selected", "_selected_action": [queued.job_id]})
    staff.post(url, {"action": "retry_selected", "_selected_action": [failed.job_id]})
    assert entries() == [
        ("admin", "bulk_cancel", "1 selected job(s)", 1, None),
        ("admin", "bulk_retry", "1 selected job(s)", 1, None),
    ]
    assert {e.actor for e in AuditEntry.objects.all()} == {operator.username}

    # A superuser's selection across tenants: one entry per tenant, each with its own jobs only.
    AuditEntry.objects.all().delete()
    superuser = make_user(None, superuser=True)
    superuser.is_staff = True
    superuser.save()
    root = login(superuser)
    theirs = enqueue(globex)
    ours = enqueue(acme)
    root.post(url, {"action": "cancel_selected", "_selected_action": [theirs.job_id, ours.job_id]})
    by_tenant = {e.tenant: e.detail["jobIds"] for e in AuditEntry.objects.all()}
    assert by_tenant == {acme.tenant: [str(ours.job_id)], globex.tenant: [str(theirs.job_id)]}


def test_admin_schedule_actions_are_recorded(staff, acme):
    result = JobRunnerFactory.get_instance().schedule_recurring_job(
        "expired-credits", {}, "*/5 * * * *", tenant_id=acme.tenant
    )
    url = reverse("admin:jobscheduler_schedule_changelist")
    staff.post(url, {"action": "pause_selected", "_selected_action": [result.job_id]})
    staff.post(url, {"action": "resume_selected", "_selected_action": [result.job_id]})
    staff.post(url, {"action": "run_selected_now", "_selected_action": [result.job_id]})
    assert [(s, a, c) for s, a, _, c, _ in entries()] == [
        ("admin", "pause_schedule", 1),
        ("admin", "resume_schedule", 1),
        ("admin", "run_schedule", 1),
    ]


def test_command_line_actions_are_recorded_with_the_login_name(acme):
    job = enqueue(acme)
    failed = finished_job(acme, JobStatus.FAILED)
    result = JobRunnerFactory.get_instance().schedule_recurring_job(
        "expired-credits", {}, "*/5 * * * *", tenant_id=acme.tenant
    )
    for args in (
        ("cancel", str(job.job_id)),
        ("retry", str(failed.job_id)),
        ("pause", str(result.job_id)),
        ("resume", str(result.job_id)),
    ):
        call_command("jobs", *args, stdout=io.StringIO(), stderr=io.StringIO())
    schedule = Schedule.objects.get(pk=result.job_id)
    assert entries() == [
        ("cli", "cancel", str(job.job_id), 1, job.job_id),
        ("cli", "retry", str(failed.job_id), 1, failed.job_id),
        ("cli", "pause_schedule", schedule.key, 1, None),
        ("cli", "resume_schedule", schedule.key, 1, None),
    ]
    assert {(e.actor, e.actor_id, e.tenant) for e in AuditEntry.objects.all()} == {
        (getpass.getuser(), "", acme.tenant)
    }


def test_job_page_and_audit_page_show_the_tenants_own_entries(operator_client, acme, globex, make_user):
    job = enqueue(acme)
    other = enqueue(acme)
    operator_client.post(reverse("jobscheduler:job-bulk"), {"action": "cancel", "job_ids": [str(job.job_id)]})
    operator_client.post(reverse("jobscheduler:job-cancel", args=[other.job_id]))

    page = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id]))
    assert [e.action for e in page.context["audit_entries"]] == ["bulk_cancel"]  # not the other job's cancel
    assert "Operator actions" in page.content.decode()

    audit_page = operator_client.get(reverse("jobscheduler:audit"))
    assert audit_page.status_code == 200
    assert [e.action for e in audit_page.context["page"].object_list] == ["cancel", "bulk_cancel"]
    html = audit_page.content.decode()
    assert "Bulk Cancel" in html and str(other.job_id) in html

    theirs = login(make_user(globex, "view_job"))
    assert list(theirs.get(reverse("jobscheduler:audit")).context["page"].object_list) == []
    assert theirs.get(reverse("jobscheduler:job-detail", args=[job.job_id])).status_code == 404


def test_audit_admin_is_tenant_scoped_and_read_only(staff, operator_client, acme, globex, make_user):
    operator_client.post(reverse("jobscheduler:job-cancel", args=[enqueue(acme).job_id]))
    url = reverse("admin:jobscheduler_auditentry_changelist")
    assert staff.get(url).context["cl"].result_count == 1
    globex_staff = make_user(globex, "view_auditentry")
    globex_staff.is_staff = True
    globex_staff.save()
    assert login(globex_staff).get(url).context["cl"].result_count == 0
    [entry] = AuditEntry.objects.all()
    assert (
        staff.post(
            reverse("admin:jobscheduler_auditentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEntry.objects.count() == 1
