"""Storage for load: queue table autovacuum, and a covering status index for the dashboard.

The queue table churns (every job is inserted, updated at claim and deleted): autovacuum must clean it long
before the default 20 % of dead rows, or claims walk ever longer chains of dead index entries; free space left in
each page keeps the claim's update on its page. The dashboard's per-status and per-runner figures read
(tenant, status, created_at) with runner_type and updated_at: carried in the index, they are index-only scans.
"""

from django.db import migrations

TUNE = """
ALTER TABLE jobscheduler_queue SET (
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.05
);
"""

COVERING_STATUS_INDEX = """
DROP INDEX IF EXISTS idx_jobs_tenant_status;
CREATE INDEX idx_jobs_tenant_status ON jobs (tenant, status, created_at DESC) INCLUDE (runner_type, updated_at);
"""

PLAIN_STATUS_INDEX = """
DROP INDEX IF EXISTS idx_jobs_tenant_status;
CREATE INDEX idx_jobs_tenant_status ON jobs (tenant, status, created_at DESC);
"""

UNTUNE = """
ALTER TABLE jobscheduler_queue RESET (
    fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay,
    autovacuum_analyze_scale_factor
);
"""


class Migration(migrations.Migration):
    dependencies = [("jobscheduler", "0001_initial")]

    operations = [
        migrations.RunSQL(TUNE, reverse_sql=UNTUNE),
        migrations.RunSQL(COVERING_STATUS_INDEX, reverse_sql=PLAIN_STATUS_INDEX),
    ]
