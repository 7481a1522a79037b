"""Columns for job controls (unique keys, snoozes, cancellation), for results kept for
``django.tasks`` (return value, one log entry per attempt), per-row metadata, and the
table of paused queues. Every new column is nullable: a plain ADD COLUMN everywhere."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_jobs", "0006_schedules"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueuePause",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("queue", models.CharField(max_length=64, unique=True, verbose_name="queue")),
                ("paused_at", models.DateTimeField(verbose_name="paused at")),
                (
                    "paused_by",
                    models.CharField(
                        blank=True, default="", max_length=150, verbose_name="paused by"
                    ),
                ),
                (
                    "reason",
                    models.CharField(blank=True, default="", max_length=255, verbose_name="reason"),
                ),
            ],
            options={
                "verbose_name": "paused queue",
                "verbose_name_plural": "paused queues",
                "ordering": ["queue"],
            },
        ),
        migrations.AddField(
            model_name="job",
            name="attempt_log",
            field=models.JSONField(
                blank=True, editable=False, null=True, verbose_name="attempt log"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="cancelled_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="cancelled at"),
        ),
        migrations.AddField(
            model_name="job",
            name="meta",
            field=models.JSONField(blank=True, editable=False, null=True, verbose_name="metadata"),
        ),
        migrations.AddField(
            model_name="job",
            name="return_value",
            field=models.JSONField(blank=True, null=True, verbose_name="return value"),
        ),
        migrations.AddField(
            model_name="job",
            name="snoozes",
            field=models.IntegerField(
                blank=True, editable=False, null=True, verbose_name="snoozes"
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="unique_key",
            field=models.CharField(
                blank=True, editable=False, max_length=255, null=True, verbose_name="unique key"
            ),
        ),
    ]
