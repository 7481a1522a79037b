"""Recurring schedules: the paused flag and first sighting of each key, and run history.

Only new tables: the job table is not touched (on SQLite an AlterField would rebuild it
and drop the partial indexes that 0002, 0003 and 0005 create with raw SQL).
"""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0005_owner_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="Schedule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=200, unique=True, verbose_name="key")),
                ("paused", models.BooleanField(default=False, verbose_name="paused")),
                ("since", models.DateTimeField(verbose_name="first seen")),
                (
                    "updated_at",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="updated at"
                    ),
                ),
            ],
            options={
                "verbose_name": "schedule",
                "verbose_name_plural": "schedules",
                "ordering": ["key"],
            },
        ),
        migrations.CreateModel(
            name="ScheduleRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=200, verbose_name="schedule key")),
                ("tick", models.DateTimeField(verbose_name="tick")),
                ("job_id", models.BigIntegerField(blank=True, null=True, verbose_name="job id")),
                ("manual", models.BooleanField(default=False, verbose_name="run by hand")),
                ("enqueued_at", models.DateTimeField(db_index=True, verbose_name="enqueued at")),
            ],
            options={
                "verbose_name": "schedule run",
                "verbose_name_plural": "schedule runs",
                "ordering": ["-tick"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("key", "tick"), name="django_jobs_schedule_run_uniq"
                    )
                ],
            },
        ),
    ]
