"""The one-by-one enqueue on each of its paths (jobscheduler/libpq.py), on a real PostgreSQL in autocommit: straight
through libpq (prepared once per session, unnamed inside a transaction) and through Django's cursor wherever
going around psycopg would lose something. Each path writes the same record and fails the same way."""

from __future__ import annotations

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from jobscheduler import JobRunnerFactory
from jobscheduler.models import Job, QueueJob
from jobscheduler.queue.enqueue import enqueue_one

pytestmark = pytest.mark.django_db(transaction=True)

PREPARED = "jobscheduler_enqueue_one"


@pytest.fixture
def runner():
    return JobRunnerFactory.get_instance()


def prepared_here() -> bool:
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s", [PREPARED])
        return cur.fetchone()[0] == 1


def recorded(job_id: str, tenant: uuid.UUID) -> tuple:
    job = Job.objects.get(job_id=job_id)
    queued = QueueJob.objects.get(job_id=job_id)
    return (job.tenant, job.status, job.runner_type, job.external_id, queued.tenant, queued.name) == (
        tenant,
        "queued",
        "pgboss",
        job_id,
        tenant,
        "t.noop",
    )


def test_autocommit_prepares_once_and_recovers_from_discard(runner, tenant):
    first = runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id
    assert prepared_here()
    with connection.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
    assert not prepared_here()
    second = runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id
    assert prepared_here()
    assert recorded(first, tenant) and recorded(second, tenant)


def test_inside_a_transaction_the_job_exists_iff_it_commits(runner, tenant):
    with connection.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
    with pytest.raises(RuntimeError), transaction.atomic():
        runner.schedule_job("t.noop", {}, tenant_id=tenant)  # first statement: psycopg opens the transaction
        runner.schedule_job("t.noop", {}, tenant_id=tenant)  # in the open transaction: unnamed, straight
        assert Job.objects.filter(tenant=tenant).count() == 2
        raise RuntimeError("roll back")
    assert Job.objects.filter(tenant=tenant).count() == QueueJob.objects.filter(tenant=tenant).count() == 0
    with transaction.atomic():
        kept = [runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id for _ in range(2)]
    assert all(recorded(job_id, tenant) for job_id in kept)
    assert not prepared_here()  # nothing prepared inside a transaction: a failure there could not be retried


def test_a_failed_statement_raises_djangos_error_and_leaves_the_connection_usable(tenant):
    job = {
        "job_name": "t.noop",
        "queue": "default",
        "tenant": tenant,
        "job_id": uuid.uuid4(),
        "meta": '{"data":{},"attempts":0,"queue":"default"}',
        "user": uuid.uuid4(),
    }
    assert enqueue_one(**job)
    with pytest.raises(IntegrityError, match="jobscheduler_queue_pkey"):
        enqueue_one(**job)
    assert Job.objects.filter(tenant=tenant).count() == 1
    with transaction.atomic():
        Job.objects.filter(tenant=tenant).count()
        with pytest.raises(IntegrityError, match="jobscheduler_queue_pkey"), transaction.atomic():
            enqueue_one(**job)
    assert Job.objects.filter(tenant=tenant).count() == QueueJob.objects.filter(tenant=tenant).count() == 1


def test_a_live_singleton_key_inserts_nothing_on_the_straight_path(runner, tenant):
    first = runner.schedule_job("t.noop", {}, tenant_id=tenant, singleton_key="nightly").job_id
    again = runner.schedule_job("t.noop", {}, tenant_id=tenant, singleton_key="nightly").job_id
    assert again == first
    assert Job.objects.filter(tenant=tenant).count() == 1


def test_logged_and_wrapped_queries_see_the_statement(runner, tenant):
    with CaptureQueriesContext(connection) as queries:
        logged = runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id
    assert [q["sql"] for q in queries.captured_queries if "INSERT INTO jobscheduler_queue" in q["sql"]]
    seen = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        wrapped = runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id
    assert any("INSERT INTO jobscheduler_queue" in sql for sql in seen)
    assert recorded(logged, tenant) and recorded(wrapped, tenant)


def test_poll_only_mode_prepares_nothing(runner, tenant, settings):
    settings.JOBSCHEDULER = {"USE_LISTEN_NOTIFY": False}
    with connection.cursor() as cur:
        cur.execute("DEALLOCATE ALL")
    job_id = runner.schedule_job("t.noop", {}, tenant_id=tenant).job_id
    assert recorded(job_id, tenant)
    assert not prepared_here()
