"""An index in the admin's default order, ``(priority, run_at, id)`` over every row.

The jobs changelist lists every job in claim order. The claim index holds only claimable
rows, so without this index PostgreSQL read and sorted the whole table for the first page
of a million-row list (about half a second) and spilled the sort to disk for page 500
(seconds). With it, any page is a walk of the index: the first page reads 50 entries,
page 500 reads 25,000 entries of an index-only scan (``EstimatingPaginator`` fetches the
page's ids first on deep pages).

PostgreSQL only: there the claim's UPDATE already touches every index of a row (it
changes indexed columns), and an index on three small columns adds little to it (the
no-op drain's PostgreSQL CPU per job was 40-42 us with it and 41-51 us without, in
alternating ``bench.drain_cost`` runs). On MariaDB/MySQL every index is a cost per claim
and per deleted job on the no-op drain (see docs/performance.md), and SQLite tables are
rarely this large: the admin's default list there sorts the matching rows. Built
CONCURRENTLY (no lock that stops enqueues and claims while it builds), hence
``atomic = False``, with an INVALID leftover of an interrupted build dropped first, as in
0005.
"""

from django.db import migrations

NAME = "django_jobs_order_idx"
TABLE = "django_jobs_job"


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
    if schema_editor.connection.vendor != "postgresql":
        return
    if _invalid_leftover(schema_editor):
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON {TABLE} (priority, run_at, id)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("django_jobs", "0014_rate_limits")]
    operations = [migrations.RunPython(create, drop, elidable=False)]
