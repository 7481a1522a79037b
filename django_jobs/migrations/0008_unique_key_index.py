"""The unique index that makes unique jobs hold across every process and host.

``unique_key`` is NULL for every job without a unique rule and for every unique job that
left the states its rule counts; a unique index allows any number of NULLs on PostgreSQL,
MariaDB/MySQL and SQLite alike, so only live keys collide, and the database refuses the
second of two concurrent enqueues whatever process or host they come from.

PostgreSQL builds it with ``CREATE UNIQUE INDEX CONCURRENTLY`` (no lock that stops
enqueues and claims while it builds), which cannot run in a transaction: hence
``atomic = False``, and an INVALID leftover of an interrupted build is dropped first, as in
0005. MariaDB builds it in place without blocking writes.
"""

from django.db import migrations

NAME = "django_jobs_unique_key_uniq"
TABLE = "django_jobs_job"


def create_sql(vendor: str) -> list[str]:
    if vendor == "mysql":
        return [f"CREATE UNIQUE INDEX {NAME} ON {TABLE} (unique_key) ALGORITHM=INPLACE LOCK=NONE"]
    if vendor == "postgresql":
        return [
            f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}",
            f"CREATE UNIQUE INDEX CONCURRENTLY {NAME} ON {TABLE} (unique_key)",
        ]
    return [f"CREATE UNIQUE INDEX {NAME} ON {TABLE} (unique_key)"]


def drop_sql(vendor: str) -> list[str]:
    if vendor == "mysql":
        return [f"DROP INDEX {NAME} ON {TABLE}"]
    if vendor == "postgresql":
        return [f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}"]
    return [f"DROP INDEX {NAME}"]


def _invalid_leftover(schema_editor) -> bool:
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
    atomic = False
    dependencies = [("django_jobs", "0007_controls_and_results")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
