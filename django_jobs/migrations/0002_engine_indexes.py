"""The indexes behind the hot queries, per engine.

PostgreSQL and SQLite get partial indexes, so that failed, finished and running rows
(possibly millions) never sit in the claim index. MySQL/MariaDB have no partial indexes:
there the claim index starts with the columns that are NULL on every claimable row, so a
``ref`` lookup on them reads ready rows already in (priority, run_at, id) order.
"""

from django.db import migrations

CLAIMABLE = "locked_at IS NULL AND failed_at IS NULL AND finished_at IS NULL"

PARTIAL = {
    "django_jobs_claim_idx": ("priority, run_at, id", CLAIMABLE),
    "django_jobs_locked_idx": ("locked_at", "locked_at IS NOT NULL"),
    "django_jobs_failed_idx": ("failed_at", "failed_at IS NOT NULL"),
    "django_jobs_finished_idx": ("finished_at", "finished_at IS NOT NULL"),
}

COMPOSITE = {
    "django_jobs_claim_my_idx": "locked_at, failed_at, finished_at, priority, run_at, id",
    "django_jobs_failed_my_idx": "failed_at",
    "django_jobs_finished_my_idx": "finished_at",
    "django_jobs_locked_my_idx": "locked_at",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        for name, columns in COMPOSITE.items():
            schema_editor.execute(f"CREATE INDEX {name} ON django_jobs_job ({columns})")
    else:
        for name, (columns, condition) in PARTIAL.items():
            schema_editor.execute(
                f"CREATE INDEX {name} ON django_jobs_job ({columns}) WHERE {condition}"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        for name in COMPOSITE:
            schema_editor.execute(f"DROP INDEX {name} ON django_jobs_job")
    else:
        for name in PARTIAL:
            schema_editor.execute(f"DROP INDEX {name}")


class Migration(migrations.Migration):
    atomic = False  # MySQL cannot roll back DDL inside a transaction
    dependencies = [("django_jobs", "0001_initial")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
