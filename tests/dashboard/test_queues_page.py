"""The Queues page: each queue's live settings and the viewer's tenant's figures; changes need change_queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from jobscheduler.models import AuditEntry, Job, JobStatus
from jobscheduler.runners.factory import JobRunnerFactory
from tests.dashboard.conftest import finished_job, login

pytestmark = pytest.mark.django_db

QUEUES = reverse("jobscheduler:queues")


def ran_for(tenant, seconds: float, status=JobStatus.COMPLETED, job_type="invoice_zip"):
    """A job of queue `emails` that finished a minute ago after running `seconds` (its last attempt)."""
    job = finished_job(tenant, status, type=job_type, metadata={"queue": "emails"})
    completed = timezone.now() - timedelta(minutes=1)
    meta = {**job.metadata, "completedAt": completed.isoformat()}
    meta["lastStartedAt"] = (completed - timedelta(seconds=seconds)).isoformat()
    Job.objects.filter(pk=job.pk).update(metadata=meta, updated_at=completed)
    return job


@pytest.fixture
def emails(acme, globex):
    """Acme: 3 waiting, 1 delayed, 1 running and 3 finished in the last hour; Globex: 5 waiting."""
    runner = JobRunnerFactory.get_instance()
    runner.schedule_jobs("invoice_email", [{}] * 4, tenant_id=acme.tenant, queue="emails")
    runner.schedule_job_at(
        "invoice_email", {}, timezone.now() + timedelta(hours=1), tenant_id=acme.tenant, queue="emails"
    )
    runner.schedule_jobs("invoice_email", [{}] * 5, tenant_id=globex.tenant, queue="emails")
    with connection.cursor() as cur:  # one of Acme's is running
        cur.execute(
            "UPDATE jobscheduler_queue SET lease_token = gen_random_uuid(), attempt = 1 WHERE job_id = "
            "(SELECT job_id FROM jobscheduler_queue WHERE tenant = %s AND run_at <= now() LIMIT 1)",
            [acme.tenant],
        )
    ran_for(acme, 2)
    ran_for(acme, 4)
    ran_for(acme, 10, JobStatus.FAILED, job_type="invoice_email")
    runner.set_queue_limits("emails", concurrency=3, tenant_concurrency=1, rate_limit="10/s")


def row_of(response, name):
    return next(r for r in response.context["rows"] if r.name == name)


def test_counts_are_the_tenants_and_the_settings_the_queues(emails, acme, make_user):
    response = login(make_user(acme, "view_job")).get(QUEUES)
    assert response.status_code == 200
    row = row_of(response, "emails")
    totals = row.figures.totals
    assert (totals.waiting, totals.delayed, totals.running) == (3, 1, 1)  # Globex's five are not Acme's
    assert (totals.completed, totals.failed) == (2, 1)
    assert totals.p50_seconds == pytest.approx(4.0) and totals.p95_seconds == pytest.approx(9.4)
    assert totals.oldest_waiting_since is not None
    assert set(row.figures.types) == {"invoice_zip", "invoice_email"}
    assert row.figures.types["invoice_zip"].completed == 2
    assert row.figures.types["invoice_email"].failed == 1 and row.figures.types["invoice_email"].waiting == 3
    html = response.content.decode()
    for shown in ("1 / 3", "(1 per tenant)", "10/s", "4.0 s", "9.4 s", ">running<"):
        assert shown in html, shown
    assert 'href="/msp/jobs/queues/"' in html  # the nav link
    assert "Pause" not in html  # no change_queue


def test_another_tenant_sees_its_own_counts_of_the_same_queue(emails, globex, make_user):
    totals = row_of(login(make_user(globex, "view_job")).get(QUEUES), "emails").figures.totals
    assert (totals.waiting, totals.running, totals.completed, totals.failed) == (5, 0, 0, 0)


def test_pause_resume_and_limits_need_change_queue_and_are_audited(emails, acme, make_user):
    viewer = login(make_user(acme, "view_job"))
    assert viewer.post(reverse("jobscheduler:queue-action", args=["emails", "pause"])).status_code == 403
    operator_user = make_user(acme, "view_job", "change_queue")
    operator = login(operator_user)
    assert "Pause" in operator.get(QUEUES).content.decode()
    response = operator.post(reverse("jobscheduler:queue-action", args=["emails", "pause"]), follow=True)
    assert "Queue emails paused: no job of it starts on any worker." in _messages(response)
    assert row_of(response, "emails").state.paused
    response = operator.post(
        reverse("jobscheduler:queue-action", args=["emails", "limits"]),
        {"concurrency": "5", "tenant_concurrency": "", "rate_limit": "100/m"},
        follow=True,
    )
    assert "Queue emails: concurrency 5, rate 100/m." in _messages(response)
    state = JobRunnerFactory.get_instance().get_queue("emails")
    assert (state.concurrency, state.tenant_concurrency, str(state.rate_limit), state.paused) == (
        5,
        None,
        "100/m",
        True,
    )
    response = operator.post(
        reverse("jobscheduler:queue-action", args=["emails", "limits"]),
        {"concurrency": "-2", "rate_limit": "fast"},
        follow=True,
    )
    assert _messages(response) == [
        "Queue emails was not changed: concurrency must be a positive integer or None, got '-2'"
    ]
    assert JobRunnerFactory.get_instance().get_queue("emails").concurrency == 5
    operator.post(reverse("jobscheduler:queue-action", args=["emails", "resume"]))
    actions = list(
        AuditEntry.objects.filter(actor=operator_user.username)
        .order_by("at")
        .values_list("action", flat=True)
    )
    assert actions == ["pause_queue", "set_queue_limits", "resume_queue"]


def test_a_bad_queue_name_or_action_changes_nothing(acme, make_user):
    operator = login(make_user(acme, "view_job", "change_queue"))
    response = operator.post(reverse("jobscheduler:queue-action", args=["a b", "pause"]), follow=True)
    assert _messages(response)[0].startswith("Queue a b was not changed: Invalid queue name: 'a b'")
    assert operator.post(reverse("jobscheduler:queue-action", args=["emails", "explode"])).status_code == 404
    assert not AuditEntry.objects.exists()


def test_temporal_differences_are_stated_when_jobs_run_there(acme, make_user):
    from tests.factories import JobFactory

    JobFactory(
        tenant=acme.tenant, status=JobStatus.QUEUED, runner_type="temporal", metadata={"queue": "emails"}
    )
    response = login(make_user(acme, "view_job")).get(QUEUES)
    assert row_of(response, "emails").figures.on_temporal
    html = response.content.decode()
    assert "Temporal has no limit on running jobs across workers" in html
    assert "task-queue rate limit" in html


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]
