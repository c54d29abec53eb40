"""`jobscheduler_uuid7()`: time-ordered ids for rows made inside statements (steps, leases), see ids.py."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION jobscheduler_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1), 54, 1), 55, 0),
        'hex')::uuid
$$;
"""

DROP = "DROP FUNCTION IF EXISTS jobscheduler_uuid7();"


class Migration(migrations.Migration):
    dependencies = [("jobscheduler", "0004_schedule_metadata")]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
