"""The queues each worker serves (`runjobworker --queues`), shown on the workers page."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0010_rate_limit"),
    ]

    operations = [
        migrations.AddField(
            model_name="worker",
            name="queues",
            field=models.JSONField(default=list),
        ),
    ]
