"""Every job has a queue: the call's `queue=`, else its handler's, else "default"; recorded and shown."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobscheduler import JobRunnerFactory, job_handler
from jobscheduler.exceptions import InvalidQueue
from jobscheduler.models import Job, QueueJob, Schedule
from jobscheduler.queue.connection import open_connection
from jobscheduler.queue.maintenance import fire_due_schedules
from jobscheduler.registry import JobHandlerRegistry

pytestmark = pytest.mark.django_db

BAD_NAME = (
    "Invalid queue name: {!r} (1-100 letters, digits, '_', '-' or '.', starting with a letter or digit)"
)


@pytest.fixture
def runner():
    return JobRunnerFactory.get_instance()


def queue_of(job_id) -> tuple[str, str]:
    """(the queue row's queue, the record's metadata.queue)."""
    return QueueJob.objects.get(job_id=job_id).queue, Job.objects.get(job_id=job_id).metadata["queue"]


def test_unnamed_handler_and_call_mean_the_default_queue(runner, tenant):
    res = runner.schedule_job("t.echo", {}, tenant_id=tenant)
    assert queue_of(res.job_id) == ("default", "default")
    assert runner.get_job_status(res.job_id, tenant).metadata["queue"] == "default"


def test_handler_queue_applies_and_the_call_overrides_it(runner, tenant):
    @job_handler("q.mail", queue="emails")
    def mail(job_id, data):
        return None

    JobHandlerRegistry.register("q.report", lambda job_id, data: None, queue="reports")
    assert JobHandlerRegistry.get("q.mail").queue == "emails"

    assert queue_of(runner.schedule_job("q.mail", {}, tenant_id=tenant).job_id) == ("emails", "emails")
    assert queue_of(runner.schedule_job("q.report", {}, tenant_id=tenant).job_id) == ("reports", "reports")
    moved = runner.schedule_job("q.mail", {}, tenant_id=tenant, queue="bulk-mail")
    assert queue_of(moved.job_id) == ("bulk-mail", "bulk-mail")
    later = runner.schedule_job_at(
        "q.mail", {}, timezone.now() + timedelta(hours=1), tenant_id=tenant, queue="later.v2"
    )
    assert queue_of(later.job_id) == ("later.v2", "later.v2")
    many = runner.schedule_jobs("q.mail", [{}, {}], tenant_id=tenant, queue="batch_1")
    assert {queue_of(r.job_id) for r in many} == {("batch_1", "batch_1")}
    many_default = runner.schedule_jobs("q.mail", [{}], tenant_id=tenant)
    assert queue_of(many_default[0].job_id) == ("emails", "emails")


@pytest.mark.parametrize("name", ["", "a b", "emails:5", "a,b", "-x", "é", "x" * 101, 7, None])
def test_a_bad_queue_name_is_refused_before_anything_is_written(runner, tenant, name):
    if name is None:  # None means "the handler's queue": it is no error
        runner.schedule_job("t.echo", {}, tenant_id=tenant, queue=name)
        assert Job.objects.count() == 1
        return
    with pytest.raises(InvalidQueue) as err:
        runner.schedule_job("t.echo", {}, tenant_id=tenant, queue=name)
    assert str(err.value) == BAD_NAME.format(name)
    with pytest.raises(InvalidQueue):
        runner.schedule_jobs("t.echo", [{}], tenant_id=tenant, queue=name)
    with pytest.raises(InvalidQueue):
        runner.schedule_recurring_job("t.echo", {}, "0 * * * *", tenant_id=tenant, queue=name)
    with pytest.raises(InvalidQueue) as err:
        JobHandlerRegistry.register("q.bad", lambda job_id, data: None, queue=name)
    assert str(err.value) == BAD_NAME.format(name)
    assert not JobHandlerRegistry.has("q.bad")
    assert (Job.objects.count(), QueueJob.objects.count(), Schedule.objects.count()) == (0, 0, 0)


def test_the_queue_is_a_reserved_metadata_key(runner, tenant):
    from jobscheduler.exceptions import InvalidJobData

    with pytest.raises(InvalidJobData) as err:
        runner.schedule_job("t.echo", {}, tenant_id=tenant, metadata={"queue": "sneaky"})
    assert str(err.value) == "metadata keys are reserved by the job record: queue"


def test_retry_keeps_the_queue_of_the_job_it_retries(runner, tenant):
    res = runner.schedule_job("t.echo", {"n": 1}, tenant_id=tenant, queue="emails")
    Job.objects.filter(job_id=res.job_id).update(status="failed")
    again = runner.retry_job(res.job_id, tenant)
    assert queue_of(again.job_id) == ("emails", "emails")


@pytest.mark.django_db(transaction=True)
def test_recurring_runs_go_to_the_schedule_queue_else_the_handler_queue(runner, tenant):
    JobHandlerRegistry.register("q.tick", lambda job_id, data: None, queue="ticks")
    named = runner.schedule_recurring_job(
        "q.tick", {}, timedelta(seconds=1), tenant_id=tenant, schedule_key="named", queue="cron"
    )
    unnamed = runner.schedule_recurring_job("q.tick", {}, timedelta(seconds=1), tenant_id=tenant)
    assert Schedule.objects.get(pk=named.job_id).queue == "cron"
    assert Schedule.objects.get(pk=unnamed.job_id).queue is None
    Schedule.objects.update(next_run_at=timezone.now() - timedelta(seconds=1))
    with open_connection() as conn, conn.transaction():
        assert fire_due_schedules(conn) == 2
    queues = {job.meta["scheduleKey"]: queue_of(job.job_id) for job in Job.objects.filter(tenant=tenant)}
    assert queues == {"named": ("cron", "cron"), f"q.tick:{tenant}": ("ticks", "ticks")}
    run = runner.trigger_schedule(named.job_id, tenant)
    assert queue_of(run.job_id) == ("cron", "cron")


def test_the_queue_is_shown_in_the_history_and_on_the_job_page(client, django_user_model, runner):
    from project.accounts.models import Tenant

    acme = Tenant.objects.create(name="Acme")
    user = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(user)
    res = runner.schedule_job("t.echo", {}, tenant_id=acme.tenant, queue="emails")
    history = client.get(reverse("jobscheduler:job-list"), {"tenant": str(acme.tenant)})
    assert history.status_code == 200
    row = history.context["table"].page.object_list[0].record
    assert row.queue == "emails"
    assert "<th" in history.content.decode() and "Queue" in history.content.decode()
    page = client.get(reverse("jobscheduler:job-detail", args=[res.job_id]))
    assert "<dt>Queue</dt><dd>emails</dd>" in page.content.decode()
