"""A queue's per-tenant concurrency limit, the ready index per (queue, tenant) the claim skips through, and the
lease index keyed by (queue, tenant) for the counts of running jobs."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0008_queue_concurrency"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="queuejob",
            name="jobsched_queue_lease_idx",
        ),
        migrations.AddField(
            model_name="queue",
            name="tenant_concurrency",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="queuejob",
            index=models.Index(
                models.F("queue"),
                models.F("tenant"),
                models.OrderBy(models.F("priority"), descending=True),
                models.F("run_at"),
                condition=models.Q(("lease_token__isnull", True)),
                name="jobsched_queue_tenready_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="queuejob",
            index=models.Index(
                condition=models.Q(("lease_token__isnull", False)),
                fields=["queue", "tenant", "lease_expires_at"],
                name="jobsched_queue_lease_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="queue",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("tenant_concurrency__isnull", True), ("tenant_concurrency__gte", 1), _connector="OR"
                ),
                name="jobsched_queue_tenant_conc_positive",
            ),
        ),
    ]
