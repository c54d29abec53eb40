"""Every job has a queue: the pgboss queue row carries it (`queue`, "default" for rows written before), and a
schedule may name the queue of its runs (`queue`, empty: the handler's queue when each run fires)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobscheduler", "0005_uuid7"),
    ]

    operations = [
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
    ]
