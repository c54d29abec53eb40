"""A queue's global concurrency limit: at most this many of its jobs run at once across all workers."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0007_queue_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="queue",
            name="concurrency",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="queue",
            constraint=models.CheckConstraint(
                condition=models.Q(("concurrency__isnull", True), ("concurrency__gte", 1), _connector="OR"),
                name="jobsched_queue_concurrency_positive",
            ),
        ),
    ]
