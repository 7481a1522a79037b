"""``Job.tag``: a short free-text label per call (``.using(tag=...)``), shown in logs, the
admin and ``jobs status``.

The column is nullable, so adding it is a plain ADD COLUMN and untagged rows cost
nothing. Its index is partial (``WHERE tag IS NOT NULL``) on PostgreSQL and SQLite, so an
untagged enqueue touches no index entry; MariaDB/MySQL have no partial indexes, and a
full one would cost every enqueue, so the admin's tag filter reads the table there.
PostgreSQL builds the index CONCURRENTLY (hence ``atomic = False``), as in 0008.
"""

from django.db import migrations, models

NAME = "django_jobs_tag_idx"
TABLE = "django_jobs_job"


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY {NAME} ON {TABLE} (tag) WHERE tag IS NOT NULL"
        )
    elif vendor == "sqlite":
        schema_editor.execute(f"CREATE INDEX {NAME} ON {TABLE} (tag) WHERE tag IS NOT NULL")


def drop(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
    elif vendor == "sqlite":
        schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("django_jobs", "0010_events")]
    operations = [
        migrations.AddField(
            model_name="job",
            name="tag",
            field=models.CharField(blank=True, max_length=64, null=True, verbose_name="tag"),
        ),
        migrations.RunPython(create, drop, elidable=False),
    ]
