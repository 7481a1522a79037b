"""An index on when claimable rows come due.

The claim index orders ready rows by (priority, run_at, id), which serves a backlog; but
with few rows ready and many scheduled for later (a million reminders next month), a claim
or an "anything ready?" probe walked every future row in it. With this index the planner
finds the few due rows by ``run_at`` and sorts them instead.
"""

from django.db import migrations

CLAIMABLE = "locked_at IS NULL AND failed_at IS NULL AND finished_at IS NULL"
NAME = "django_jobs_due_idx"
MYSQL_NAME = "django_jobs_due_my_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(
            f"CREATE INDEX {MYSQL_NAME} ON django_jobs_job "
            "(locked_at, failed_at, finished_at, run_at)"
        )
    else:
        schema_editor.execute(f"CREATE INDEX {NAME} ON django_jobs_job (run_at) WHERE {CLAIMABLE}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"DROP INDEX {MYSQL_NAME} ON django_jobs_job")
    else:
        schema_editor.execute(f"DROP INDEX {NAME}")


class Migration(migrations.Migration):
    atomic = False  # MySQL cannot roll back DDL inside a transaction
    dependencies = [("django_jobs", "0002_engine_indexes")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
