"""Bulk redrive on pgboss: retry or cancel every job of a tenant matching a selection, in bounded batches, with
one audit entry per action (the API, the command line and the dashboard)."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from jobscheduler import JobRunnerFactory
from jobscheduler.exceptions import InvalidQueue, InvalidSelection
from jobscheduler.models import AuditEntry, Job, JobDetail, QueueJob
from jobscheduler.selection import JobSelection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runner():
    return JobRunnerFactory.get_instance()


def enqueue(runner, tenant, n, **options) -> list[str]:
    return [
        r.job_id
        for r in runner.schedule_jobs("t.echo", [{"n": i} for i in range(n)], tenant_id=tenant, **options)
    ]


def end_as(ids, status: str) -> None:
    """As if a worker had run them: final status, queue rows gone."""
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE jobs SET status = %s::job_status, updated_at = now() WHERE job_id = ANY(%s::uuid[])",
            [status, ids],
        )
        cur.execute("DELETE FROM jobscheduler_queue WHERE job_id = ANY(%s::uuid[])", [ids])


def retries_of(ids) -> list[Job]:
    return list(Job.objects.filter(metadata__retryOf__in=[str(i) for i in ids]))


def test_bulk_retry_reenqueues_each_matching_finished_job_once_in_batches(runner, tenant, other_tenant):
    failed_emails = enqueue(runner, tenant, 7, queue="emails")
    end_as(failed_emails, "failed")
    failed_default = enqueue(runner, tenant, 2)
    end_as(failed_default, "failed")
    done = enqueue(runner, tenant, 2, queue="emails")
    end_as(done, "completed")
    live = enqueue(runner, tenant, 2, queue="emails")
    theirs = enqueue(runner, other_tenant, 3, queue="emails")
    end_as(theirs, "failed")

    outcome = runner.retry_jobs(
        JobSelection(status="failed", queue="emails"), tenant, actor="alice", batch_size=3
    )

    assert (outcome.matched, outcome.done, outcome.skipped) == (7, 7, 0)
    again = retries_of(failed_emails)
    assert sorted(j.meta["retryOf"] for j in again) == sorted(failed_emails)  # each once
    assert {(j.status, j.meta["queue"], j.tenant, j.type) for j in again} == {
        ("queued", "emails", tenant, "t.echo")
    }
    originals = {str(j.job_id): j for j in Job.objects.filter(job_id__in=failed_emails)}
    for j in again:
        assert j.meta["data"] == originals[j.meta["retryOf"]].meta["data"]
        assert QueueJob.objects.get(job_id=j.job_id).queue == "emails"
    assert set(Job.objects.filter(job_id__in=failed_emails).values_list("status", flat=True)) == {"failed"}
    assert not retries_of(failed_default + done + live + theirs)
    entry = AuditEntry.objects.get(action="bulk_retry")
    assert (entry.actor, entry.tenant, entry.detail["filter"], entry.count) == (
        "alice",
        tenant,
        {"status": "failed", "queue": "emails"},
        7,
    )


def test_bulk_retry_of_every_finished_job_skips_live_ones_and_jobs_without_a_handler(runner, tenant):
    finished = enqueue(runner, tenant, 3)
    end_as(finished[:2], "completed")
    end_as(finished[2:], "cancelled")
    with connection.cursor() as cur:  # a job whose handler this deployment no longer has
        cur.execute("UPDATE jobs SET type = 'gone.handler' WHERE job_id = %s", [finished[0]])
    enqueue(runner, tenant, 2)
    outcome = runner.retry_jobs(JobSelection(), tenant)
    assert (outcome.matched, outcome.done, outcome.skipped) == (3, 2, 1)
    assert AuditEntry.objects.get().actor == "system"


def test_bulk_cancel_removes_queued_jobs_and_tells_running_ones(runner, tenant, other_tenant):
    queued = enqueue(runner, tenant, 5, queue="emails")
    running = enqueue(runner, tenant, 2, queue="emails")
    with connection.cursor() as cur:  # as if a worker held them
        cur.execute(
            "UPDATE jobscheduler_queue SET lease_token = gen_random_uuid(), attempt = 1, "
            "lease_expires_at = now() + interval '1 minute' WHERE job_id = ANY(%s::uuid[])",
            [running],
        )
        cur.execute("UPDATE jobs SET status = 'processing' WHERE job_id = ANY(%s::uuid[])", [running])
    elsewhere = enqueue(runner, tenant, 2)
    theirs = enqueue(runner, other_tenant, 2, queue="emails")

    outcome = runner.cancel_jobs(JobSelection(queue="emails"), tenant, actor="bob", batch_size=2)

    assert (outcome.matched, outcome.done) == (7, 7)
    assert set(Job.objects.filter(job_id__in=queued).values_list("status", flat=True)) == {"cancelled"}
    assert JobDetail.objects.filter(job_id__in=queued, step_name="execution_cancelled").count() == 5
    assert {
        (j.meta["cancelReason"], j.meta["cancelledBy"])
        for j in Job.objects.filter(job_id__in=queued + running)
    } == {("Cancelled in bulk", "bob")}  # the running two keep it for the cancelled end to come
    assert not QueueJob.objects.filter(job_id__in=queued).exists()
    assert (
        list(QueueJob.objects.filter(job_id__in=running).values_list("cancel_requested", flat=True))
        == [True] * 2
    )
    assert set(Job.objects.filter(job_id__in=elsewhere + theirs).values_list("status", flat=True)) == {
        "queued"
    }
    again = runner.cancel_jobs(JobSelection(queue="emails"), tenant, actor="bob")
    assert (again.matched, again.done, again.skipped) == (2, 0, 2)  # the running two were told already
    entries = list(AuditEntry.objects.order_by("at").values_list("action", "actor", "count"))
    assert entries == [("bulk_cancel", "bob", 7), ("bulk_cancel", "bob", 0)]


def test_selections_narrow_by_every_criterion(runner, tenant):
    old, new = enqueue(runner, tenant, 1), enqueue(runner, tenant, 1, queue="emails")
    end_as(old + new, "failed")
    an_hour_ago = timezone.now() - timedelta(hours=1)
    Job.objects.filter(job_id__in=old).update(
        created_at=an_hour_ago - timedelta(hours=1), updated_at=an_hour_ago
    )
    ids = lambda selection: {str(i) for i in selection.jobs(tenant).values_list("job_id", flat=True)}  # noqa: E731
    assert ids(JobSelection(created_after=an_hour_ago)) == set(new)
    assert ids(JobSelection(finished_before=an_hour_ago + timedelta(minutes=1))) == set(old)
    assert ids(JobSelection(queue="default")) == set(old)
    assert ids(JobSelection(status="finished", runner="pgboss", type="t.echo")) == set(old + new)
    assert ids(JobSelection(search=new[0])) == set(new)
    assert ids(JobSelection.from_params({"status": "failed", "queue": "", "created_after": ""})) == set(
        old + new
    )


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"status": "lost"}, InvalidSelection, "status must be one of active, cancelled, completed, failed, finished, "
         "live, pending, processing, queued, got 'lost'"),
        ({"runner": "celery"}, InvalidSelection, "runner must be one of pgboss, temporal, got 'celery'"),
        ({"colour": "red"}, InvalidSelection, "Unknown selection criteria: colour"),
        ({"created_after": "yesterday"}, InvalidSelection, "created_after must be an ISO 8601 date and time, got "
         "'yesterday'"),
        ({"queue": "a b"}, InvalidQueue, "Invalid queue name: 'a b' (1-100 letters, digits, '_', '-' or '.', "
         "starting with a letter or digit)"),
    ],
)  # fmt: skip
def test_a_bad_selection_is_refused_before_anything_is_done(runner, tenant, params, error, message):
    with pytest.raises(error) as err:
        runner.retry_jobs(JobSelection.from_params(params), tenant)
    assert str(err.value) == message
    assert not AuditEntry.objects.exists()


def test_a_bad_tenant_or_batch_size_is_refused_before_anything_is_done(runner, tenant):
    with pytest.raises(InvalidSelection) as err:
        runner.retry_jobs(JobSelection(), "not-a-tenant")
    assert str(err.value) == "A bulk action needs the tenant's id, got 'not-a-tenant'"
    with pytest.raises(InvalidSelection) as err:
        runner.cancel_jobs(JobSelection(), tenant, batch_size=0)
    assert str(err.value) == "batch_size must be an integer from 1 to 10000, got 0"
    with pytest.raises(InvalidSelection) as err:
        JobSelection(created_after=timezone.now().replace(tzinfo=None))
    assert str(err.value).startswith(
        "created_after must be a timezone-aware datetime, got datetime.datetime("
    )
    assert not AuditEntry.objects.exists()


def test_the_command_line_redrives_and_names_its_actor(runner, tenant):
    failed = enqueue(runner, tenant, 4, queue="emails")
    end_as(failed, "failed")
    out = io.StringIO()
    call_command(
        "redrivejobs", "retry", "--tenant", str(tenant), "--status", "failed", "--queue", "emails",
        "--batch-size", "2", "--actor", "ops-oncall", stdout=out,
    )  # fmt: skip
    assert out.getvalue() == "Retried 4 job(s) of 4 matching; 0 skipped.\n"
    assert len(retries_of(failed)) == 4
    out = io.StringIO()
    call_command("redrivejobs", "cancel", "--tenant", str(tenant), "--queue", "emails", stdout=out)
    assert out.getvalue() == "Cancelled 4 job(s) of 4 matching; 0 skipped.\n"
    assert list(AuditEntry.objects.order_by("at").values_list("action", "actor", "source")) == [
        ("bulk_retry", "ops-oncall", "cli"),
        ("bulk_cancel", __import__("getpass").getuser(), "cli"),
    ]
    with pytest.raises(CommandError) as err:
        call_command("redrivejobs", "retry", "--tenant", str(tenant), "--status", "lost")
    assert str(err.value).startswith("status must be one of")


def test_queue_changes_are_audited(runner):
    runner.pause_queue("emails", actor="carol")
    runner.set_queue_limits("emails", concurrency=3, rate_limit="10/s", actor="carol")
    runner.reset_queue("emails")
    call_command("jobqueues", "--actor", "dave", "resume", "emails", stdout=io.StringIO())
    assert not AuditEntry.objects.exclude(tenant=None).exists()  # a queue is no tenant's
    assert list(AuditEntry.objects.order_by("at").values_list("action", "actor", "detail")) == [
        ("pause_queue", "carol", {"queue": "emails", "paused": True}),
        ("set_queue_limits", "carol", {"queue": "emails", "concurrency": 3, "rate_limit": "10/s"}),
        ("reset_queue", "system", {"queue": "emails", "concurrency": None, "tenant_concurrency": None,
                                   "rate_limit": None, "paused": False}),
        ("resume_queue", "dave", {"queue": "emails", "paused": False}),
    ]  # fmt: skip


def test_the_dashboard_redrives_every_job_matching_the_filter(client, django_user_model, runner):
    from django.contrib.auth.models import Permission

    from project.accounts.models import Tenant

    acme = Tenant.objects.create(name="Acme")
    user = django_user_model.objects.create_user("op", password="pw", tenant=acme)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_job", "retry_job", "cancel_job"])
    )
    client.force_login(user)
    failed = enqueue(runner, acme.tenant, 30, queue="emails")
    end_as(failed, "failed")
    other = enqueue(runner, acme.tenant, 3)
    end_as(other, "failed")
    page = client.get(
        reverse("jobscheduler:job-list"), {"status": "failed", "queue": "emails", "per_page": 25}
    )
    assert "Retry all finished" in page.content.decode()
    response = client.post(
        reverse("jobscheduler:job-redrive"),
        {
            "action": "retry",
            "status": "failed",
            "queue": "emails",
            "next": "/msp/jobs/history/?status=failed",
        },
        follow=True,
    )
    assert "Retried 30 job(s) matching the filter; 0 skipped." in [
        str(m) for m in response.context["messages"]
    ]
    assert len(retries_of(failed)) == 30 and not retries_of(other)
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.source, entry.tenant, entry.detail["filter"]) == (
        "op",
        "dashboard",
        acme.tenant,
        {"status": "failed", "queue": "emails"},
    )
    viewer = django_user_model.objects.create_user("viewer", password="pw", tenant=acme)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    assert client.post(reverse("jobscheduler:job-redrive"), {"action": "cancel"}).status_code == 403


def test_payload_search_is_key_value_containment(runner, tenant):
    def job(data):
        return runner.schedule_job("t.echo", data, tenant_id=tenant).job_id

    number, text, nested, other = (
        job({"customerId": 42, "region": "eu"}),
        job({"customerId": "42", "region": "us"}),
        job({"customer": {"id": 42}, "region": "eu"}),
        job({"customerId": 420}),
    )

    def ids(payload):
        return {str(i) for i in JobSelection(payload=payload).jobs(tenant).values_list("job_id", flat=True)}

    assert ids("customerId=42") == {number, text}
    assert ids("customerId=42 region=eu") == {number}
    assert ids("customer.id=42") == {nested}
    assert ids('customerId="42"') == {text}
    assert ids("region=eu") == {number, nested}
    assert other not in ids("customerId=42")
    with pytest.raises(InvalidSelection) as err:
        JobSelection(payload="customerId")
    assert (
        str(err.value)
        == "payload must be key=value pairs separated by spaces, like customerId=42, got 'customerId'"
    )


def test_the_history_searches_the_payload_and_says_what_is_wrong(client, django_user_model, runner):
    from django.contrib.auth.models import Permission

    from project.accounts.models import Tenant

    acme = Tenant.objects.create(name="Acme")
    user = django_user_model.objects.create_user("viewer", password="pw", tenant=acme)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    wanted = runner.schedule_job("t.echo", {"customerId": 42}, tenant_id=acme.tenant).job_id
    runner.schedule_job("t.echo", {"customerId": 7}, tenant_id=acme.tenant)
    page = client.get(reverse("jobscheduler:job-list"), {"payload": "customerId=42"})
    assert [str(r.record.job_id) for r in page.context["table"].page.object_list] == [wanted]
    page = client.get(reverse("jobscheduler:job-list"), {"payload": "customerId"})
    assert "payload must be key=value pairs separated by spaces, like customerId=42" in page.content.decode()
