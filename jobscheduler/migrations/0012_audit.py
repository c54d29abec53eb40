"""The audit log of operator actions (`jobscheduler_audit`): bulk retries and cancels, queue changes."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0011_worker_queues"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("actor", models.CharField(max_length=255)),
                ("action", models.CharField(max_length=64)),
                ("tenant", models.UUIDField(blank=True, null=True)),
                ("filter", models.JSONField(blank=True, default=dict)),
                ("count", models.IntegerField(default=0)),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                "db_table": "jobscheduler_audit",
                "ordering": ("-at",),
                "indexes": [models.Index(fields=["tenant", "-at"], name="jobsched_audit_tenant_at_idx")],
            },
        ),
    ]
