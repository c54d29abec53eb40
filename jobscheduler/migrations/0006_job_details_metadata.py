"""`job_details.metadata JSONB`, the seed's last column: a step's attempt, worker and duration.

Added as a nullable column at the end of the table (after `retry_count`, where the seed declares it); existing
rows keep working with NULL metadata, which the dashboard shows as "not recorded".
"""

from django.db import migrations

import jobscheduler.models


class Migration(migrations.Migration):
    dependencies = [("jobscheduler", "0005_uuid7")]

    operations = [
        migrations.AddField(
            model_name="jobdetail",
            name="metadata",
            field=jobscheduler.models.RecordJSONField(blank=True, null=True),
        ),
    ]
