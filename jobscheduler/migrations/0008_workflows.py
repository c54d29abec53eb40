"""Workflows: dependency edges, the workflows table, the waiting count of queue rows, an index of steps."""

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0007_audit"),
    ]

    operations = [
        migrations.AddField(
            model_name="queuejob",
            name="blocked_by",
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="queuejob",
            name="waiting_on",
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.CreateModel(
            name="Workflow",
            fields=[
                ("id", models.UUIDField(primary_key=True, serialize=False)),
                ("tenant", models.UUIDField()),
                ("name", models.CharField(max_length=255)),
                ("runner_type", models.CharField(default="pgboss", max_length=50)),
                ("user_id", models.UUIDField()),
                ("step_count", models.IntegerField()),
                ("external_id", models.CharField(blank=True, max_length=255, null=True)),
                ("created_at", models.DateTimeField(db_default=django.db.models.functions.datetime.Now())),
            ],
            options={
                "db_table": "jobscheduler_workflows",
                "ordering": ("-created_at",),
                "indexes": [
                    models.Index(fields=["tenant", "-created_at"], name="jobsched_workflow_tenant_idx")
                ],
            },
        ),
        migrations.CreateModel(
            name="WorkflowDependency",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "job_id", "depends_on", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("tenant", models.UUIDField()),
                ("workflow_id", models.UUIDField()),
                ("job_id", models.UUIDField()),
                ("depends_on", models.UUIDField()),
                ("run_after_failure", models.BooleanField(default=False)),
                ("settled", models.BooleanField(default=False)),
            ],
            options={
                "db_table": "jobscheduler_dependencies",
                "indexes": [models.Index(fields=["depends_on"], name="jobsched_dep_depends_on_idx")],
            },
        ),
        migrations.RunSQL(
            "CREATE INDEX jobs_workflow_idx ON jobs (tenant, ((metadata ->> 'workflowId')))"
            " WHERE metadata ? 'workflowId'",
            reverse_sql="DROP INDEX IF EXISTS jobs_workflow_idx",
        ),
        migrations.RunSQL(
            "ALTER TABLE jobscheduler_queue ADD CONSTRAINT jobsched_queue_waiting_parked"
            " CHECK (waiting_on = 0 OR run_at = '9999-12-31 00:00:00+00'::timestamptz)",
            reverse_sql="ALTER TABLE jobscheduler_queue DROP CONSTRAINT IF EXISTS jobsched_queue_waiting_parked",
        ),
    ]
