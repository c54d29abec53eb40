"""Migration 0006 adds `job_details.metadata` to a database that already holds history: nothing is lost."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from jobscheduler.models import JobDetail

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("jobscheduler", "0005_uuid7")
ADDED_BY = ("jobscheduler", "0006_job_details_metadata")


def _migrate(target):
    MigrationExecutor(connection).migrate([target])


def _migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("jobscheduler"))
    return executor.loader.graph.leaf_nodes("jobscheduler")


def _columns():
    with connection.cursor() as cur:
        cur.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'job_details' "
            "ORDER BY ordinal_position"
        )
        return [r[0] for r in cur.fetchall()]


def test_rows_written_before_the_column_existed_keep_working():
    tenant, job_id = uuid.uuid4(), uuid.uuid4()
    _migrate(BEFORE)
    try:
        assert "metadata" not in _columns()
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO jobs (tenant, job_id, type, status, user_id) VALUES (%s, %s, 'old', 'completed', %s)",
                [tenant, job_id, uuid.UUID(int=0)],
            )
            cur.execute(
                """INSERT INTO job_details (tenant, job_id, step_name, status, result, processed_at, retry_count)
                   VALUES (%s, %s, 'execution_completed', 'completed', '{"attempt": 1}', now(), 0)""",
                [tenant, job_id],
            )
    finally:
        latest = _migrate_to_latest()
    assert ADDED_BY in MigrationExecutor(connection).loader.graph.forwards_plan(latest[0])
    assert _columns()[-2:] == ["retry_count", "metadata"]
    detail = JobDetail.objects.get(tenant=tenant, job_id=job_id)
    assert (detail.result, detail.metadata) == ({"attempt": 1}, None)
