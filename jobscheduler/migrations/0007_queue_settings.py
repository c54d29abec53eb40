"""The queues' live settings (`jobscheduler_queues`), and the ready index keyed by queue first, so a claim reads
each queue it serves in (priority, run time) order."""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0006_queue_of_each_job"),
    ]

    operations = [
        migrations.CreateModel(
            name="Queue",
            fields=[
                ("name", models.CharField(max_length=100, primary_key=True, serialize=False)),
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
    ]
