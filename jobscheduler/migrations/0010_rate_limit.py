"""A queue's rate limit (starts per period) and the engine's window of recent starts that enforces it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0009_tenant_concurrency"),
    ]

    operations = [
        migrations.AddField(
            model_name="queue",
            name="rate_limit",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="queue",
            name="rate_period_seconds",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="queue",
            name="rate_window",
            field=models.JSONField(blank=True, default=dict),
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
