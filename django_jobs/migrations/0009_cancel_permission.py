"""The ``cancel_job`` permission: cancelling jobs in the admin takes it, like retrying
takes ``retry_job``. Only model options change: no table is touched."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("django_jobs", "0008_unique_key_index")]

    operations = [
        migrations.AlterModelOptions(
            name="job",
            options={
                "ordering": ["priority", "run_at", "id"],
                "permissions": [
                    ("retry_job", "Can retry jobs"),
                    ("cancel_job", "Can cancel jobs"),
                ],
                "verbose_name": "job",
                "verbose_name_plural": "jobs",
            },
        ),
    ]
