"""Named queues and flow control: each job's queue (the pgboss queue row's `queue`; a schedule's queue for its
runs), the queues' live settings (`jobscheduler_queues`: concurrency, per-tenant concurrency, rate limit and its
window, paused), the ready indexes keyed by queue (and by queue and tenant, for per-tenant limits), the lease
index by (queue, tenant) for the counts of running jobs, the queues each worker serves, and the audit actions
and source of queue changes and API calls."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0008_workflows"),
    ]

    operations = [
        migrations.CreateModel(
            name="Queue",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
                ("concurrency", models.PositiveIntegerField(blank=True, null=True)),
                ("tenant_concurrency", models.PositiveIntegerField(blank=True, null=True)),
                ("rate_limit", models.PositiveIntegerField(blank=True, null=True)),
                ("rate_period_seconds", models.FloatField(blank=True, null=True)),
                ("rate_window", models.JSONField(blank=True, default=dict)),
                ("paused", models.BooleanField(default=False)),
                ("updated_at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "db_table": "jobscheduler_queues",
                "ordering": ("name",),
            },
        ),
        migrations.RemoveIndex(
            model_name="queuejob",
            name="jobsched_queue_ready_idx",
        ),
        migrations.RemoveIndex(
            model_name="queuejob",
            name="jobsched_queue_lease_idx",
        ),
        migrations.AddField(
            model_name="queuejob",
            name="queue",
            field=models.CharField(db_default="default", default="default", max_length=100),
        ),
        migrations.AddField(
            model_name="schedule",
            name="queue",
            field=models.CharField(blank=True, max_length=100, null=True),
        ),
        migrations.AddField(
            model_name="worker",
            name="queues",
            field=models.JSONField(default=list),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(
                choices=[
                    ("cancel", "Cancel"),
                    ("retry", "Retry"),
                    ("bulk_cancel", "Bulk Cancel"),
                    ("bulk_retry", "Bulk Retry"),
                    ("pause_schedule", "Pause Schedule"),
                    ("resume_schedule", "Resume Schedule"),
                    ("run_schedule", "Run Schedule"),
                    ("pause_queue", "Pause Queue"),
                    ("resume_queue", "Resume Queue"),
                    ("set_queue_limits", "Set Queue Limits"),
                    ("reset_queue", "Reset Queue"),
                ],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="source",
            field=models.CharField(
                choices=[("dashboard", "Dashboard"), ("admin", "Admin"), ("cli", "Cli"), ("api", "Api")],
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="queuejob",
            index=models.Index(
                models.F("queue"),
                models.OrderBy(models.F("priority"), descending=True),
                models.F("run_at"),
                condition=models.Q(("lease_token__isnull", True)),
                name="jobsched_queue_ready_idx",
            ),
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
                condition=models.Q(("concurrency__isnull", True), ("concurrency__gte", 1), _connector="OR"),
                name="jobsched_queue_concurrency_positive",
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
        migrations.AddConstraint(
            model_name="queue",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("rate_limit__isnull", True), ("rate_period_seconds__isnull", True)),
                    models.Q(("rate_limit__gte", 1), ("rate_period_seconds__gt", 0)),
                    _connector="OR",
                ),
                name="jobsched_queue_rate_limit_valid",
            ),
        ),
    ]
