"""The database holds the seed's schema: read back from the PostgreSQL catalog and compared with the seed's own
DDL, column by column, not with Django's models."""

import re

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

#: The seed's DDL, verbatim.
SEED_DDL = """
CREATE TYPE job_status AS ENUM ('pending', 'processing', 'completed', 'failed', 'active', 'queued');

CREATE TABLE jobs (
    tenant UUID NOT NULL,
    job_id UUID NOT NULL DEFAULT gen_random_uuid(),
    type VARCHAR NOT NULL,
    metadata JSONB,
    status job_status NOT NULL,
    created_at TIMESTAMP DEFAULT now(),
    updated_at TIMESTAMP,
    user_id UUID NOT NULL,
    runner_type VARCHAR(50) NOT NULL DEFAULT 'pgboss',
    external_id VARCHAR,
    external_run_id VARCHAR,
    PRIMARY KEY (tenant, job_id)
);

CREATE TABLE job_details (
    tenant UUID NOT NULL,
    detail_id UUID NOT NULL DEFAULT gen_random_uuid(),
    job_id UUID NOT NULL,
    step_name VARCHAR NOT NULL,
    status job_status NOT NULL,
    result JSONB,
    processed_at TIMESTAMP,
    retry_count INTEGER DEFAULT 0,
    metadata JSONB,
    PRIMARY KEY (tenant, detail_id),
    FOREIGN KEY (tenant, job_id) REFERENCES jobs(tenant, job_id)
);
"""

#: Where our column type differs from the seed's on purpose (docs/data-model.md gives the same list and reasons):
#: {(table, column): (the seed's type, ours)}. Every other column has exactly the seed's type.
DELIBERATE_TYPE_DIFFERENCES = {
    # Instants, not wall-clock readings: a `timestamp` column would shift with the session's TimeZone.
    ("jobs", "created_at"): ("timestamp without time zone", "timestamp with time zone"),
    ("jobs", "updated_at"): ("timestamp without time zone", "timestamp with time zone"),
    ("job_details", "processed_at"): ("timestamp without time zone", "timestamp with time zone"),
    # Bounded text, as Django's CharField (the models, the admin, forms) requires; 255 fits every id we write.
    ("jobs", "type"): ("character varying", "character varying(255)"),
    ("jobs", "external_id"): ("character varying", "character varying(255)"),
    ("jobs", "external_run_id"): ("character varying", "character varying(255)"),
    ("job_details", "step_name"): ("character varying", "character varying(255)"),
}

#: The seed's type names as PostgreSQL's catalog spells them (format_type).
_TYPE_NAMES = {
    "UUID": "uuid",
    "JSONB": "jsonb",
    "INTEGER": "integer",
    "TIMESTAMP": "timestamp without time zone",
    "VARCHAR": "character varying",
    "job_status": "job_status",
}


def _split_top_level(body):
    """Comma-separated items of a CREATE TABLE body, ignoring commas inside parentheses."""
    items, depth, current = [], 0, ""
    for char in body:
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    return [item for item in [*items, current.strip()] if item]


def _seed_type(text):
    match = re.fullmatch(r"(\w+)(?:\((\d+)\))?", text)
    name = _TYPE_NAMES[match.group(1)]
    return f"{name}({match.group(2)})" if match.group(2) else name


def parse_seed_tables(ddl):
    """{table: {"columns": [(name, type, not_null, default)], "primary_key": [...], "foreign_keys": [...]}}."""
    tables = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", ddl, re.S):
        table = tables[name] = {"columns": [], "primary_key": None, "foreign_keys": []}
        for item in _split_top_level(body):
            if item.startswith("PRIMARY KEY"):
                table["primary_key"] = re.fullmatch(r"PRIMARY KEY \((.*)\)", item).group(1)
            elif item.startswith("FOREIGN KEY"):
                table["foreign_keys"].append(item)
            else:
                column = re.fullmatch(r"(\w+) (\w+(?:\(\d+\))?)( NOT NULL)?(?: DEFAULT (.+))?", item)
                col_name, col_type, not_null, default = column.groups()
                table["columns"].append((col_name, _seed_type(col_type), bool(not_null), default))
    return tables


def parse_seed_enum(ddl):
    values = re.search(r"CREATE TYPE job_status AS ENUM \((.*?)\);", ddl).group(1)
    return re.findall(r"'(\w+)'", values)


def catalog_columns(table):
    """[(name, type, not_null, default)] of a table as PostgreSQL holds it, in column order."""
    with connection.cursor() as cur:
        cur.execute(
            """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
               FROM pg_attribute a
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
            [table],
        )
        return [
            (name, kind, not_null, _without_cast(default)) for name, kind, not_null, default in cur.fetchall()
        ]


def _without_cast(default):
    """`'pgboss'::character varying` -> `'pgboss'`: the catalog spells out the cast the seed left implicit."""
    return None if default is None else re.sub(r"::[\w ]+(\(\d+\))?$", "", default)


SEED_TABLES = parse_seed_tables(SEED_DDL)


def test_the_seed_ddl_parses_into_both_tables():
    assert list(SEED_TABLES) == ["jobs", "job_details"]
    assert len(SEED_TABLES["jobs"]["columns"]) == 11
    assert len(SEED_TABLES["job_details"]["columns"]) == 9
    assert SEED_TABLES["job_details"]["columns"][-1] == ("metadata", "jsonb", False, None)


@pytest.mark.parametrize("table", ["jobs", "job_details"])
def test_columns_are_the_seeds_in_order_nullability_default_and_type(table):
    ours = catalog_columns(table)
    seed = SEED_TABLES[table]["columns"]
    assert [c[0] for c in ours] == [c[0] for c in seed]
    for (name, our_type, our_not_null, our_default), (_, seed_type, seed_not_null, seed_default) in zip(
        ours, seed, strict=True
    ):
        assert (name, our_not_null) == (name, seed_not_null)
        assert (name, our_default) == (name, seed_default)
        expected = DELIBERATE_TYPE_DIFFERENCES.get((table, name), (seed_type, seed_type))
        assert expected[0] == seed_type, f"{table}.{name}: the listed difference names a type the seed lacks"
        assert (name, our_type) == (name, expected[1])


def test_every_listed_type_difference_is_real():
    """A difference listed here but no longer made (or made to another type) fails, so the list stays true."""
    for (table, name), (seed_type, our_type) in DELIBERATE_TYPE_DIFFERENCES.items():
        assert seed_type != our_type
        assert (name, seed_type) in [(c[0], c[1]) for c in SEED_TABLES[table]["columns"]]
        assert (name, our_type) in [(c[0], c[1]) for c in catalog_columns(table)]


def test_job_status_enum_values():
    with connection.cursor() as cur:
        cur.execute("SELECT unnest(enum_range(NULL::job_status))::text")
        values = [r[0] for r in cur.fetchall()]
    # The seed's values in the seed's order, then our one addition.
    assert values == [*parse_seed_enum(SEED_DDL), "cancelled"]


def _constraint(table, kind):
    with connection.cursor() as cur:
        cur.execute(
            """SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid WHERE t.relname = %s AND c.contype = %s ORDER BY conname""",
            [table, kind],
        )
        return cur.fetchall()


def test_composite_primary_keys_and_foreign_key_are_the_seeds():
    assert _constraint("jobs", "p") == [("jobs_pkey", f"PRIMARY KEY ({SEED_TABLES['jobs']['primary_key']})")]
    assert _constraint("job_details", "p") == [
        ("job_details_pkey", f"PRIMARY KEY ({SEED_TABLES['job_details']['primary_key']})")
    ]
    assert [definition for _, definition in _constraint("job_details", "f")] == SEED_TABLES["job_details"][
        "foreign_keys"
    ]
    assert _constraint("jobs", "f") == []


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
