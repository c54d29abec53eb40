"""Indexes of the history's payload search and queue filter, chosen by measurement at 1,000,000 jobs
(`bench/dashboard_bench.py --searches`, figures in docs/dashboard.md):

* `idx_jobs_data`: GIN `jsonb_path_ops` on the payload (`metadata -> 'data'`), for key/value containment
  (`customerId=42`): a single match in a million went from a sequential walk of the tenant's jobs (seconds) to
  an index lookup; `jsonb_path_ops` is about half the size of the default `jsonb_ops` and quicker to build and to
  write, and containment is the only operator the search uses.
* `idx_jobs_tenant_queue`: the named queues' jobs by (tenant, queue, created_at), so a rare queue's history is
  an index range instead of a filter over every job; jobs of the default queue (most jobs of most sites) are
  left out, as its filter is best served by the (tenant, created_at) order anyway, and they pay nothing for it.

Both are built CONCURRENTLY, so a big `jobs` table keeps taking writes meanwhile, and `jobs` is analyzed at once:
until the planner has statistics of the new index expressions it takes a containment for a common match (2 %)
and walks the (tenant, created_at) order instead of the index (measured: 4.4 s instead of 0.1 ms for a single
match in a million, until ANALYZE).
"""

from django.db import migrations

PAYLOAD = "CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_jobs_data ON jobs USING gin ((metadata -> 'data') jsonb_path_ops)"
QUEUE = """
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_jobs_tenant_queue ON jobs (tenant, (metadata ->> 'queue'), created_at DESC)
WHERE (metadata ->> 'queue') <> 'default'
"""


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("jobscheduler", "0010_unique_key_index")]

    operations = [
        migrations.RunSQL(PAYLOAD, reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS idx_jobs_data"),
        migrations.RunSQL(QUEUE, reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS idx_jobs_tenant_queue"),
        migrations.RunSQL("ANALYZE jobs", reverse_sql=migrations.RunSQL.noop),
    ]
