"""An index on who holds locked rows: "rows held by worker X".

``Storage.held_by`` (``locked_at IS NOT NULL AND locked_by = %s``) runs whenever a worker
starts or reconnects and whenever the supervisor cleans up after a dead worker; without
this index each call read the whole table.

PostgreSQL builds it with ``CREATE INDEX CONCURRENTLY``, which does not block enqueues and
claims while it runs (a plain ``CREATE INDEX`` holds a lock that stops every write to the
table for the whole build) but cannot run inside a transaction: hence ``atomic = False``.
A concurrent build that was interrupted leaves an INVALID index behind, which is dropped
and built again. PostgreSQL and SQLite index only locked rows (partial); MySQL/MariaDB have
no partial indexes: ``(locked_by, locked_at)`` gives a ``ref`` lookup on the owner, and
the NULL ``locked_by`` of every unlocked row is never read.
"""

from django.db import migrations

NAME = "django_jobs_owner_idx"
MYSQL_NAME = "django_jobs_owner_my_idx"
TABLE = "django_jobs_job"


def create_sql(vendor: str) -> list[str]:
    """The statements that build the index on ``vendor``."""
    if vendor == "mysql":
        # ALGORITHM=INPLACE, LOCK=NONE: enqueues and claims go on while InnoDB builds it.
        return [
            f"CREATE INDEX {MYSQL_NAME} ON {TABLE} (locked_by, locked_at)"
            " ALGORITHM=INPLACE LOCK=NONE"
        ]
    if vendor == "postgresql":
        return [
            f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}",
            f"CREATE INDEX CONCURRENTLY {NAME} ON {TABLE} (locked_by) WHERE locked_at IS NOT NULL",
        ]
    return [f"CREATE INDEX {NAME} ON {TABLE} (locked_by) WHERE locked_at IS NOT NULL"]


def drop_sql(vendor: str) -> list[str]:
    if vendor == "mysql":
        return [f"DROP INDEX {MYSQL_NAME} ON {TABLE}"]
    if vendor == "postgresql":
        return [f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}"]
    return [f"DROP INDEX {NAME}"]


def _invalid_leftover(schema_editor) -> bool:
    """An INVALID index of an interrupted concurrent build (PostgreSQL)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s AND pg_table_is_visible(c.oid)",
            [NAME],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = create_sql(vendor)
    if vendor == "postgresql" and not _invalid_leftover(schema_editor):
        statements = statements[1:]
    for sql in statements:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    for sql in drop_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql)


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY refuses to run in a transaction; MySQL cannot roll back
    # DDL anyway.
    atomic = False
    dependencies = [("django_jobs", "0004_claims")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
