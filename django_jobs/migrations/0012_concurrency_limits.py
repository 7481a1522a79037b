"""Concurrency limits: the key and limit a job counts against, the index that counts a
key's claimed rows and finds its waiting ones, and the per-key lock rows.

The columns are nullable (a plain ADD COLUMN everywhere). On PostgreSQL and SQLite two
partial indexes hold only rows with a key: the claimed ones (the slots a claim counts)
and the waiting ones in claim order (what the end of a claim un-parks), so rows without a
key (nearly all) never enter them. MariaDB/MySQL have no partial indexes and get
``(concurrency_key)`` alone, which claims and outcomes (that change ``locked_at``) never
have to update. PostgreSQL builds them CONCURRENTLY, as 0008 does: ``atomic = False``.
"""

from django.db import migrations, models

TABLE = "django_jobs_job"
#: The claimed rows of a key (the slots taken), and its waiting rows in claim order.
PARTIAL = {
    "django_jobs_concurrency_idx": (
        "concurrency_key",
        "concurrency_key IS NOT NULL AND locked_at IS NOT NULL",
    ),
    "django_jobs_blocked_idx": (
        "concurrency_key, priority, id",
        "concurrency_key IS NOT NULL AND run_at IS NULL AND locked_at IS NULL"
        " AND failed_at IS NULL AND finished_at IS NULL",
    ),
}
MYSQL_NAME = "django_jobs_concurrency_idx"


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "mysql":
        schema_editor.execute(
            f"CREATE INDEX {MYSQL_NAME} ON {TABLE} (concurrency_key) ALGORITHM=INPLACE LOCK=NONE"
        )
        return
    how = "CONCURRENTLY " if vendor == "postgresql" else ""
    for name, (columns, condition) in PARTIAL.items():
        if vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        schema_editor.execute(f"CREATE INDEX {how}{name} ON {TABLE} ({columns}) WHERE {condition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"DROP INDEX {MYSQL_NAME} ON {TABLE}")
        return
    for name in PARTIAL:
        schema_editor.execute(f"DROP INDEX {name}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("django_jobs", "0011_job_tag")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="concurrency_key",
            field=models.CharField(
                blank=True,
                editable=False,
                max_length=255,
                null=True,
                verbose_name="concurrency key",
            ),
        ),
        migrations.AddField(
            model_name="job",
            name="concurrency_limit",
            field=models.IntegerField(
                blank=True, editable=False, null=True, verbose_name="concurrency limit"
            ),
        ),
        migrations.CreateModel(
            name="LimitLock",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "key",
                    models.CharField(
                        db_column="lock_key", max_length=255, unique=True, verbose_name="key"
                    ),
                ),
                ("used_at", models.DateTimeField(db_index=True, verbose_name="last used")),
            ],
            options={
                "verbose_name": "limit lock",
                "verbose_name_plural": "limit locks",
                "ordering": ["key"],
            },
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
