"""The operator audit log `jobscheduler_audit` (an addition): who did what, when, from where, on how many."""

import uuid

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0006_job_details_metadata"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, primary_key=True, serialize=False)),
                ("tenant", models.UUIDField(blank=True, null=True)),
                ("at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
                ("actor", models.CharField(max_length=255)),
                ("actor_id", models.CharField(blank=True, default="", max_length=64)),
                (
                    "source",
                    models.CharField(
                        choices=[("dashboard", "Dashboard"), ("admin", "Admin"), ("cli", "Cli")],
                        max_length=16,
                    ),
                ),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("cancel", "Cancel"),
                            ("retry", "Retry"),
                            ("bulk_cancel", "Bulk Cancel"),
                            ("bulk_retry", "Bulk Retry"),
                            ("pause_schedule", "Pause Schedule"),
                            ("resume_schedule", "Resume Schedule"),
                            ("run_schedule", "Run Schedule"),
                        ],
                        max_length=32,
                    ),
                ),
                ("target", models.CharField(blank=True, default="", max_length=255)),
                ("job_id", models.UUIDField(blank=True, null=True)),
                ("count", models.IntegerField(default=0)),
                ("detail", models.JSONField(blank=True, default=dict)),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "db_table": "jobscheduler_audit",
                "ordering": ("-at",),
                "indexes": [
                    models.Index(fields=["tenant", "-at"], name="jobsched_audit_tenant_at_idx"),
                    models.Index(fields=["tenant", "job_id"], name="jobsched_audit_job_idx"),
                ],
            },
        ),
    ]
