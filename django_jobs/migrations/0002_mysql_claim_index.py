"""The claim index for MySQL/MariaDB, which cannot build the partial index of 0001.

The claimable rows are those whose lock, failure and finish columns are all NULL; with
those columns first, the engine reads ready rows in (priority, run_at, id) order without
passing over failed or finished rows. Other engines are served by the partial index.
"""

from django.db import migrations

INDEX = "django_jobs_claim_my_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(
            f"CREATE INDEX {INDEX} ON django_jobs_job "
            "(locked_at, failed_at, finished_at, priority, run_at, id)"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"DROP INDEX {INDEX} ON django_jobs_job")


class Migration(migrations.Migration):
    atomic = False  # MySQL cannot roll back DDL inside a transaction
    dependencies = [("django_jobs", "0001_initial")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
