"""The events table: what subscribers on SQLite and MySQL/MariaDB poll (PostgreSQL uses
NOTIFY and leaves it empty)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0009_cancel_permission"),
    ]

    operations = [
        migrations.CreateModel(
            name="Event",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("channel", models.CharField(max_length=200, verbose_name="channel")),
                ("payload", models.TextField(verbose_name="payload")),
                ("created_at", models.DateTimeField(verbose_name="created at")),
            ],
            options={
                "verbose_name": "event",
                "verbose_name_plural": "events",
                "indexes": [
                    models.Index(fields=["channel", "id"], name="django_jobs_event_chan_idx"),
                    models.Index(fields=["created_at"], name="django_jobs_event_created_idx"),
                ],
            },
        ),
    ]
