"""Jobs with a uniqueness policy (Unique, Throttle, Debounce) are found by their key: an index of only those jobs,
by (tenant, key, creation time), so the other jobs pay nothing for it."""

from django.db import migrations

CREATE = """
CREATE INDEX idx_jobs_unique_key ON jobs (tenant, (metadata ->> 'uniqueKey'), created_at DESC)
WHERE metadata ? 'uniqueKey';
"""

DROP = "DROP INDEX IF EXISTS idx_jobs_unique_key;"


class Migration(migrations.Migration):
    dependencies = [("jobscheduler", "0009_queues")]

    operations = [migrations.RunSQL(CREATE, reverse_sql=DROP)]
