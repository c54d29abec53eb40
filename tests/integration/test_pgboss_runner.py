"""The pgboss runner's API on a real PostgreSQL, without a worker: what is written, and what is refused."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from jobscheduler import JobRunnerFactory, JobScheduler, get_job_status, schedule_job
from jobscheduler.exceptions import (
    InvalidJobData,
    InvalidSchedule,
    JobHandlerNotFound,
    PayloadTooLarge,
    TenantRequired,
)
from jobscheduler.models import Job, JobDetail, QueueJob, Schedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def runner():
    return JobRunnerFactory.get_instance()


def counts():
    return Job.objects.count(), QueueJob.objects.count(), JobDetail.objects.count(), Schedule.objects.count()


def test_factory_gives_the_pgboss_runner_once(runner):
    assert runner.runner_type == "pgboss"
    assert JobRunnerFactory.get_instance() is runner
    assert not runner.fallback_active
    assert runner.is_healthy()


def test_schedule_job_writes_queue_row_and_record(runner, tenant):
    user = uuid.uuid4()
    res = runner.schedule_job(
        "t.echo", {"tenantId": str(tenant), "x": 1}, user_id=user, priority=5, metadata={"source": "test"}
    )
    job = Job.objects.get(job_id=res.job_id)
    assert (job.tenant, job.type, job.status, job.runner_type) == (tenant, "t.echo", "queued", "pgboss")
    assert job.external_id == res.external_id == res.job_id
    assert job.user_id == user
    assert job.metadata["data"] == {"tenantId": str(tenant), "x": 1}
    assert job.metadata["source"] == "test" and job.metadata["priority"] == 5
    queued = QueueJob.objects.get(job_id=res.job_id)
    assert (queued.tenant, queued.name, queued.priority, queued.attempt, queued.max_attempts) == (
        tenant,
        "t.echo",
        5,
        0,
        3,
    )
    status = runner.get_job_status(res.job_id, tenant)
    assert status.status == "queued" and status.attempts == 0 and status.runner_type == "pgboss"


def test_user_defaults_to_the_system_user(runner, tenant, settings):
    settings.JOBSCHEDULER = {"SYSTEM_USER_ID": "11111111-2222-3333-4444-555555555555"}
    res = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    assert str(Job.objects.get(job_id=res.job_id).user_id) == "11111111-2222-3333-4444-555555555555"


def test_status_is_scoped_to_the_tenant(runner, tenant, other_tenant):
    res = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    assert runner.get_job_status(res.job_id, other_tenant) is None
    assert runner.get_job_status("not-a-uuid", tenant) is None
    assert not runner.cancel_job(res.job_id, other_tenant)
    assert Job.objects.get(job_id=res.job_id).status == "queued"


def test_schedule_job_at_needs_an_aware_datetime(runner, tenant):
    before = counts()
    with pytest.raises(InvalidSchedule) as err:
        runner.schedule_job_at("t.noop", {}, datetime(2030, 1, 1), tenant_id=tenant)
    assert str(err.value) == "run_at must be timezone-aware (a naive datetime is ambiguous)"
    assert counts() == before
    when = datetime.now(UTC) + timedelta(hours=1)
    res = runner.schedule_job_at("t.noop", {}, when, tenant_id=tenant)
    assert abs((QueueJob.objects.get(job_id=res.job_id).run_at - when).total_seconds()) < 0.001


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r, t: r.schedule_job("nope", {}, tenant_id=t), JobHandlerNotFound, "No handler registered for job: nope"),
        (lambda r, t: r.schedule_job("t.noop", [1], tenant_id=t), InvalidJobData, "Job data must be a JSON object (a dict), got list"),
        (lambda r, t: r.schedule_job("t.noop", {"s": {1, 2}}, tenant_id=t), InvalidJobData, "Job data is not JSON-serialisable: Object of type set is not JSON serializable"),
        (lambda r, t: r.schedule_job("t.noop", {}), TenantRequired, 'A tenant is required: pass tenant_id=... or put "tenantId" in the job data.'),
        (lambda r, t: r.schedule_job("t.noop", {}, tenant_id=t, metadata={"data": 1}), InvalidJobData, "metadata keys are reserved by the job record: data"),
        (lambda r, t: r.schedule_job("t.noop", {}, tenant_id=t, priority="high"), InvalidJobData, "priority must be a 32-bit integer, got 'high'"),
        (lambda r, t: r.schedule_job("t.noop", {}, tenant_id=t, metadata={"retryOf": "x"}), InvalidJobData, "metadata keys are reserved by the job record: retryOf"),
        (lambda r, t: r.schedule_recurring_job("t.noop", {}, "not a cron", tenant_id=t), InvalidSchedule, "Invalid cron expression: 'not a cron' (expected 5 fields, or 6 with seconds first)"),
        (lambda r, t: r.schedule_recurring_job("t.noop", {}, "0 0 * * *", timezone="Nowhere/Land", tenant_id=t), InvalidSchedule, "Invalid timezone: 'Nowhere/Land'"),
        (lambda r, t: r.schedule_recurring_job("nope", {}, "0 0 * * *", tenant_id=t), JobHandlerNotFound, "No handler registered for job: nope"),
        (lambda r, t: r.schedule_jobs("t.noop", [{}, "x"], tenant_id=t), InvalidJobData, "Job data must be a JSON object (a dict), got str"),
        (lambda r, t: r.schedule_job("t.noop", {"x": "\ud800"}, tenant_id=t), InvalidJobData, "Job data contains a lone surrogate U+D800 (half of a UTF-16 pair), which PostgreSQL cannot store"),
        (lambda r, t: r.schedule_jobs("t.noop", [{}, {"x": "\ud800"}], tenant_id=t), InvalidJobData, "Job data contains a lone surrogate U+D800 (half of a UTF-16 pair), which PostgreSQL cannot store"),
        (lambda r, t: r.schedule_job("t.noop", {}, tenant_id=t, metadata={"x": "\udc00"}), InvalidJobData, "metadata contains a lone surrogate U+DC00 (half of a UTF-16 pair), which PostgreSQL cannot store"),
        (lambda r, t: r.schedule_job("t.noop", {}, tenant_id=t, singleton_key="\ud800"), InvalidJobData, "singleton_key contains the surrogate code point U+D800, which is not Unicode text and PostgreSQL cannot store"),
        (lambda r, t: r.schedule_recurring_job("t.noop", {"x": "\ud800"}, "0 0 * * *", tenant_id=t), InvalidJobData, "Job data contains a lone surrogate U+D800 (half of a UTF-16 pair), which PostgreSQL cannot store"),
        (lambda r, t: r.schedule_recurring_job("t.noop", {}, "0 0 * * *", schedule_key="k\ud800", tenant_id=t), InvalidSchedule, "schedule_key contains the surrogate code point U+D800, which is not Unicode text and PostgreSQL cannot store"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_anything_is_written(runner, tenant, call, error, message):
    runner.schedule_job("t.noop", {}, tenant_id=tenant)
    before = counts()
    with pytest.raises(error) as err:
        call(runner, tenant)
    assert str(err.value) == message
    assert counts() == before


def test_refused_data_leaves_the_callers_transaction_usable(runner, tenant):
    """A lone surrogate used to reach PostgreSQL and abort the whole transaction with a DataError; now it is
    refused in Python, and the caller's other writes in the same transaction still commit."""
    with transaction.atomic():
        first = runner.schedule_job("t.echo", {"n": 1}, tenant_id=tenant)
        with pytest.raises(InvalidJobData):
            runner.schedule_job("t.echo", {"x": "\ud800"}, tenant_id=tenant)
        second = runner.schedule_job("t.echo", {"n": 2, "s": "é\ud83d\ude00"}, tenant_id=tenant)
    stored = {str(j.job_id): j.metadata["data"] for j in Job.objects.filter(tenant=tenant)}
    assert stored == {first.job_id: {"n": 1}, second.job_id: {"n": 2, "s": "é😀"}}  # a pair is one character


def test_payload_limit_round_trips_at_the_limit_and_refuses_above(runner, tenant, settings):
    settings.JOBSCHEDULER = {"MAX_PAYLOAD_BYTES": 1000}
    at_limit = {"s": "x" * (1000 - len('{"s":""}'))}
    res = runner.schedule_job("t.echo", at_limit, tenant_id=tenant)
    assert Job.objects.get(job_id=res.job_id).metadata["data"] == at_limit
    before = counts()
    with pytest.raises(PayloadTooLarge) as err:
        runner.schedule_job("t.echo", {"s": "x" * 993}, tenant_id=tenant)
    assert str(err.value) == "Job payload is 1001 bytes, over the limit of 1000 bytes (MAX_PAYLOAD_BYTES)"
    assert counts() == before


def test_rolled_back_transaction_leaves_no_job(runner, tenant):
    before = counts()
    with pytest.raises(RuntimeError), transaction.atomic():
        runner.schedule_job("t.noop", {}, tenant_id=tenant)
        runner.schedule_jobs("t.noop", [{}, {}], tenant_id=tenant)
        raise RuntimeError("business logic failed")
    assert counts() == before


def test_singleton_key_returns_the_live_job(runner, tenant, other_tenant):
    first = runner.schedule_job("t.noop", {"n": 1}, tenant_id=tenant, singleton_key="sync")
    again = runner.schedule_job("t.noop", {"n": 2}, tenant_id=tenant, singleton_key="sync")
    elsewhere = runner.schedule_job("t.noop", {"n": 3}, tenant_id=other_tenant, singleton_key="sync")
    assert again.job_id == first.job_id
    assert elsewhere.job_id != first.job_id
    assert Job.objects.filter(tenant=tenant).count() == 1
    assert runner.cancel_job(first.job_id, tenant)
    fresh = runner.schedule_job("t.noop", {"n": 4}, tenant_id=tenant, singleton_key="sync")
    assert fresh.job_id != first.job_id


def test_bulk_enqueue_is_one_statement(runner, tenant, django_assert_max_num_queries):
    with django_assert_max_num_queries(1):
        results = runner.schedule_jobs("t.noop", [{"i": i} for i in range(500)], tenant_id=tenant)
    assert len({r.job_id for r in results}) == 500
    assert Job.objects.filter(tenant=tenant, status="queued").count() == 500
    assert QueueJob.objects.filter(tenant=tenant).count() == 500


def test_cancel_queued_job(runner, tenant):
    res = runner.schedule_job("t.noop", {}, tenant_id=tenant)
    assert runner.cancel_job(res.job_id, tenant)
    assert not QueueJob.objects.filter(job_id=res.job_id).exists()
    status = runner.get_job_status(res.job_id, tenant)
    assert status.status == "cancelled" and status.completed_at is not None
    steps = list(JobDetail.objects.filter(job_id=res.job_id).values_list("step_name", "status"))
    assert steps == [("execution_cancelled", "cancelled")]
    assert not runner.cancel_job(res.job_id, tenant)  # already final


def test_recurring_job_upserts_by_key(runner, tenant):
    first = runner.schedule_recurring_job("t.noop", {"v": 1}, "0 0 * * *", tenant_id=tenant)
    assert first.external_id == f"t.noop:{tenant}"
    second = runner.schedule_recurring_job(
        "t.noop", {"v": 2}, "*/5 * * * *", timezone="Europe/Berlin", tenant_id=tenant
    )
    assert second.job_id == first.job_id
    schedule = Schedule.objects.get(pk=first.job_id)
    assert (schedule.cron, schedule.timezone, schedule.data) == ("*/5 * * * *", "Europe/Berlin", {"v": 2})
    assert schedule.next_run_at > datetime.now(UTC)
    interval = runner.schedule_recurring_job(
        "t.noop", {}, timedelta(seconds=30), tenant_id=tenant, schedule_key="every-30s"
    )
    assert Schedule.objects.get(pk=interval.job_id).interval_seconds == 30
    assert runner.cancel_job(first.job_id, tenant)
    assert not Schedule.objects.filter(pk=first.job_id).exists()


def test_pause_resume_and_trigger_schedule(runner, tenant, other_tenant):
    sched = runner.schedule_recurring_job(
        "t.noop", {"k": 1}, "0 0 1 1 *", tenant_id=tenant, metadata={"origin": "billing"}
    )
    assert not runner.set_schedule_paused(sched.job_id, other_tenant, True)
    assert runner.set_schedule_paused(sched.job_id, tenant, True)
    assert Schedule.objects.get(pk=sched.job_id).paused
    assert runner.set_schedule_paused(sched.job_id, tenant, False)
    assert runner.trigger_schedule(sched.job_id, other_tenant) is None
    fired = runner.trigger_schedule(sched.job_id, tenant)
    job = Job.objects.get(job_id=fired.job_id)
    assert job.metadata["data"] == {"k": 1} and job.metadata["scheduleKey"] == f"t.noop:{tenant}"
    assert job.metadata["origin"] == "billing"
    assert Schedule.objects.get(pk=sched.job_id).last_job_id == job.job_id


def test_retry_job_re_enqueues_a_finished_job(runner, tenant):
    res = runner.schedule_job("t.echo", {"x": 5}, tenant_id=tenant)
    assert runner.retry_job(res.job_id, tenant) is None  # not finished yet
    runner.cancel_job(res.job_id, tenant)
    again = runner.retry_job(res.job_id, tenant)
    job = Job.objects.get(job_id=again.job_id)
    assert (
        job.metadata["data"] == {"x": 5} and job.metadata["retryOf"] == res.job_id and job.status == "queued"
    )


def test_module_shortcuts_and_legacy_facade(tenant):
    res = schedule_job("t.noop", {"tenantId": str(tenant)})
    assert get_job_status(res.job_id, tenant).status == "queued"
    legacy = JobScheduler.get_instance()
    job_id = legacy.schedule_immediate_job("t.noop", {"tenantId": str(tenant)})
    later = legacy.schedule_scheduled_job(
        "t.noop", datetime.now(UTC) + timedelta(minutes=5), {"tenantId": str(tenant)}
    )
    recurring = legacy.schedule_recurring_job("t.noop", "0 * * * *", {"tenantId": str(tenant)})
    assert Job.objects.filter(job_id__in=[job_id, later]).count() == 2
    assert Schedule.objects.filter(pk=recurring).exists()
    assert legacy.cancel_job(job_id, tenant)


def test_async_twins(tenant):
    from asgiref.sync import async_to_sync

    from jobscheduler import acancel_job, aget_job_status, aschedule_job

    async def scenario():
        res = await aschedule_job("t.noop", {"tenantId": str(tenant)})
        assert (await aget_job_status(res.job_id, tenant)).status == "queued"
        assert await acancel_job(res.job_id, tenant)
        return res

    res = async_to_sync(scenario)()
    assert Job.objects.get(job_id=res.job_id).status == "cancelled"


def test_enqueue_notifies_only_on_commit(runner, tenant):
    from jobscheduler.queue.connection import open_connection

    with open_connection() as listener:
        listener.execute("LISTEN jobscheduler_jobs")
        with transaction.atomic():
            runner.schedule_job("t.noop", {}, tenant_id=tenant)
            assert list(listener.notifies(timeout=0.2)) == []
        # pytest-django's test transaction is still open: the NOTIFY is held until it commits
        assert connection.in_atomic_block
