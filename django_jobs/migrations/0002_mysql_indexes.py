"""Indexes for MySQL/MariaDB, which cannot build the partial indexes of 0001.

The claimable rows are those whose lock, failure and finish columns are all NULL; with
those columns first, the engine reads ready rows in (priority, run_at, id) order without
passing over failed or finished rows. Other engines are served by the partial index.
"""

from django.db import migrations

INDEXES = {
    "django_jobs_claim_my_idx": "locked_at, failed_at, finished_at, priority, run_at, id",
    # Stand-ins for the partial indexes of 0001 that MySQL skips (admin filters, pruning).
    "django_jobs_failed_my_idx": "failed_at",
    "django_jobs_finished_my_idx": "finished_at",
    "django_jobs_locked_my_idx": "locked_at",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        for name, columns in INDEXES.items():
            schema_editor.execute(f"CREATE INDEX {name} ON django_jobs_job ({columns})")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        for name in INDEXES:
            schema_editor.execute(f"DROP INDEX {name} ON django_jobs_job")


class Migration(migrations.Migration):
    atomic = False  # MySQL cannot roll back DDL inside a transaction
    dependencies = [("django_jobs", "0001_initial")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
