"""The database holds the seed's schema: read back from the PostgreSQL catalog, not from Django's models."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _columns(table):
    with connection.cursor() as cur:
        cur.execute(
            """SELECT column_name, data_type, udt_name, character_maximum_length, is_nullable, column_default
               FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position""",
            [table],
        )
        return {r[0]: r[1:] for r in cur.fetchall()}


def _constraint(table, kind):
    with connection.cursor() as cur:
        cur.execute(
            """SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname = %s AND c.contype = %s ORDER BY conname""",
            [table, kind],
        )
        return cur.fetchall()


def test_job_status_enum_values():
    with connection.cursor() as cur:
        cur.execute("SELECT unnest(enum_range(NULL::job_status))::text")
        values = [r[0] for r in cur.fetchall()]
    assert values == ["pending", "processing", "completed", "failed", "active", "queued", "cancelled"]


def test_jobs_columns_match_the_seed():
    cols = _columns("jobs")
    assert list(cols) == [
        "tenant", "job_id", "type", "metadata", "status", "created_at", "updated_at", "user_id",
        "runner_type", "external_id", "external_run_id",
    ]  # fmt: skip
    assert cols["tenant"][:1] == ("uuid",) and cols["tenant"][3] == "NO"
    assert cols["job_id"][0] == "uuid" and cols["job_id"][4] == "gen_random_uuid()"
    assert cols["type"][:4] == ("character varying", "varchar", 255, "NO")
    assert cols["metadata"][0] == "jsonb"
    assert cols["status"][:2] == ("USER-DEFINED", "job_status") and cols["status"][3] == "NO"
    assert cols["created_at"][0] == "timestamp with time zone" and cols["created_at"][4] == "now()"
    assert cols["updated_at"][0] == "timestamp with time zone"
    assert cols["user_id"][0] == "uuid" and cols["user_id"][3] == "NO"
    assert cols["runner_type"][:4] == ("character varying", "varchar", 50, "NO")
    assert cols["runner_type"][4].startswith("'pgboss'")
    assert cols["external_id"][:3] == ("character varying", "varchar", 255)
    assert cols["external_run_id"][:3] == ("character varying", "varchar", 255)


def test_job_details_columns_match_the_seed():
    cols = _columns("job_details")
    assert list(cols) == [
        "tenant", "detail_id", "job_id", "step_name", "status", "result", "processed_at", "retry_count",
    ]  # fmt: skip
    assert cols["detail_id"][0] == "uuid" and cols["detail_id"][4] == "gen_random_uuid()"
    assert cols["step_name"][:4] == ("character varying", "varchar", 255, "NO")
    assert cols["status"][1] == "job_status"
    assert cols["result"][0] == "jsonb"
    assert cols["processed_at"][0] == "timestamp with time zone"
    assert cols["retry_count"][0] == "integer" and cols["retry_count"][4] == "0"


def test_composite_primary_keys_and_foreign_key():
    assert _constraint("jobs", "p") == [("jobs_pkey", "PRIMARY KEY (tenant, job_id)")]
    assert _constraint("job_details", "p") == [("job_details_pkey", "PRIMARY KEY (tenant, detail_id)")]
    fks = _constraint("job_details", "f")
    assert len(fks) == 1
    assert fks[0][1].startswith("FOREIGN KEY (tenant, job_id) REFERENCES jobs(tenant, job_id)")


def test_lookup_indexes_exist():
    with connection.cursor() as cur:
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs'")
        defs = dict(cur.fetchall())
    assert "(tenant, created_at DESC)" in defs["idx_jobs_tenant_created_at"]
    assert "(tenant, status" in defs["idx_jobs_tenant_status"]
    assert "(external_id)" in defs["idx_jobs_external_id"]


def test_detail_for_a_job_of_another_tenant_is_refused(tenant, other_tenant):
    from django.db import IntegrityError, transaction

    from tests.factories import JobDetailFactory, JobFactory

    job = JobFactory(tenant=tenant)
    with pytest.raises(IntegrityError), transaction.atomic():
        JobDetailFactory(job=job, tenant=other_tenant)


def test_queryset_states(tenant, other_tenant):
    from jobscheduler.models import Job
    from tests.factories import JobFactory

    for status in ("pending", "queued", "processing", "completed", "failed", "cancelled"):
        JobFactory(tenant=tenant, status=status)
    JobFactory(tenant=other_tenant, status="failed")
    mine = Job.objects.for_tenant(tenant)
    assert mine.count() == 6
    assert set(mine.pending().values_list("status", flat=True)) == {"pending", "queued"}
    assert set(mine.running().values_list("status", flat=True)) == {"processing"}
    assert set(mine.finished().values_list("status", flat=True)) == {"completed", "failed", "cancelled"}
    assert mine.failed().count() == 1


def test_sql_uuid7_matches_the_python_ids():
    from jobscheduler.ids import new_id

    before = new_id()
    with connection.cursor() as cur:
        cur.execute("SELECT jobscheduler_uuid7()")
        made = cur.fetchone()[0]
    made = made if hasattr(made, "version") else __import__("uuid").UUID(str(made))
    assert made.version == 7
    assert abs((made.int >> 80) - (before.int >> 80)) < 5000
