"""Migration 0005: "rows held by worker X" through an index, built without blocking writes.

The lookups at worker start (``Storage.held_by``) and of the lifeline
(``Storage.recoverable``) are EXPLAINed on each engine with thousands of rows, most of them
not locked, and must read an index instead of the whole table.
"""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from django_jobs import clock, later_many
from django_jobs.models import Job
from django_jobs.storage import get_storage
from tests.conftest import analyze_jobs
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)

owner_index = importlib.import_module("django_jobs.migrations.0005_owner_index")

WORKERS = 20
HELD_EACH = 10


def fill_table() -> None:
    """3,000 rows: finished, failed and ready ones, and 200 held by 20 workers."""
    later_many(jobs.record, [[f"r{i}"] for i in range(3000)])
    ids = list(Job.objects.order_by("pk").values_list("pk", flat=True))
    now = clock.now()
    Job.objects.filter(pk__in=ids[:1000]).update(finished_at=now)
    Job.objects.filter(pk__in=ids[1000:1800]).update(failed_at=now, run_at=None)
    held = ids[1800 : 1800 + WORKERS * HELD_EACH]
    for n in range(WORKERS):
        mine = held[n * HELD_EACH : (n + 1) * HELD_EACH]
        Job.objects.filter(pk__in=mine).update(
            locked_at=now - timedelta(seconds=n), locked_by=f"host:{n}:w", claim_token=n + 1
        )
    analyze_jobs()


def captured(call) -> list[tuple[str, list]]:
    """The SELECTs on the job table that ``call()`` runs."""
    seen: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT") and "django_jobs_job" in sql:
            seen.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        call()
    return seen


def explain(sql: str, params: list) -> str:
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        return "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())


def assert_no_table_scan(plan: str) -> None:
    if connection.vendor == "postgresql":
        assert "Seq Scan" not in plan, plan
    elif connection.vendor == "sqlite":
        assert "SCAN django_jobs_job" not in plan.replace('"', ""), plan
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    else:
        # MySQL's EXPLAIN: id, select_type, table, partitions, type, possible_keys, key, …
        assert " ALL " not in f" {plan} ", plan


def test_held_by_reads_the_owner_index():
    fill_table()
    storage = get_storage()
    rows: list = []
    (query,) = captured(lambda: rows.extend(storage.held_by("host:7:w")))
    assert len(rows) == HELD_EACH  # the query found what the index must serve
    plan = explain(*query)
    assert_no_table_scan(plan)
    expected = (
        "django_jobs_owner_my_idx" if connection.vendor == "mysql" else "django_jobs_owner_idx"
    )
    assert expected in plan, plan


def test_the_lifeline_reads_locked_rows_through_an_index():
    fill_table()
    storage = get_storage()
    now = clock.now()
    live = [f"host:{n}:w" for n in range(WORKERS) if n != 3]
    rows: list = []

    def recoverable():
        with storage.write_transaction():
            rows.extend(storage.recoverable(live, now + timedelta(minutes=1), now, 200))

    (query,) = captured(recoverable)
    assert {row.locked_by for row in rows} == {"host:3:w"}
    with storage.write_transaction():
        plan = explain(*query)
    assert_no_table_scan(plan)


def test_the_migration_builds_the_index_concurrently_on_postgresql():
    statements = owner_index.create_sql("postgresql")
    assert statements[-1].startswith("CREATE INDEX CONCURRENTLY django_jobs_owner_idx"), statements
    assert all("CONCURRENTLY" in sql for sql in owner_index.drop_sql("postgresql"))
    assert owner_index.Migration.atomic is False


def migrate(target) -> list[str]:
    """Migrate django_jobs to ``target``; the DDL statements that ran."""
    seen: list[str] = []

    def record(execute, sql, params, many, context):
        if any(word in sql.upper() for word in ("CREATE INDEX", "DROP INDEX")):
            seen.append(sql)
        return execute(sql, params, many, context)

    executor = MigrationExecutor(connection)
    with connection.execute_wrapper(record):
        executor.migrate([target])
    return seen


def index_names() -> set[str]:
    with connection.cursor() as cursor:
        return {
            name
            for name, info in connection.introspection.get_constraints(
                cursor, "django_jobs_job"
            ).items()
            if info["index"]
        }


def test_the_migration_runs_both_ways_on_a_live_table():
    later_many(jobs.record, [[f"r{i}"] for i in range(50)])
    leaf = MigrationExecutor(connection).loader.graph.leaf_nodes("django_jobs")[0]
    name = "django_jobs_owner_my_idx" if connection.vendor == "mysql" else "django_jobs_owner_idx"
    try:
        backwards = migrate(("django_jobs", "0004_claims"))
        assert name not in index_names()
        forwards = migrate(("django_jobs", "0005_owner_index"))
    finally:
        migrate(leaf)
    assert name in index_names()
    assert any(name in sql for sql in backwards), backwards
    (create,) = [sql for sql in forwards if name in sql]
    if connection.vendor == "postgresql":
        # Run for real outside a transaction: PostgreSQL refuses CONCURRENTLY inside one.
        assert create.startswith("CREATE INDEX CONCURRENTLY"), create
        assert index_is_valid(name) is True


def index_is_valid(name: str) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname = %s",
            [name],
        )
        row = cursor.fetchone()
    return row and row[0]


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="INVALID indexes: PostgreSQL")
def test_an_interrupted_concurrent_build_is_built_again():
    later_many(jobs.record, [["a"], ["b"]])  # two rows of one queue
    leaf = MigrationExecutor(connection).loader.graph.leaf_nodes("django_jobs")[0]
    try:
        migrate(("django_jobs", "0004_claims"))
        # A concurrent build that fails half-way leaves its index behind, INVALID: here a
        # unique index over a duplicated value.
        with pytest.raises(Exception, match="could not create unique index"):
            with connection.cursor() as cursor:
                cursor.execute("CREATE UNIQUE INDEX CONCURRENTLY django_jobs_owner_idx"
                               " ON django_jobs_job (queue)")  # fmt: skip
        assert index_is_valid("django_jobs_owner_idx") is False
        forwards = migrate(("django_jobs", "0005_owner_index"))
    finally:
        migrate(leaf)
    assert forwards[0] == "DROP INDEX CONCURRENTLY IF EXISTS django_jobs_owner_idx", forwards
    assert index_is_valid("django_jobs_owner_idx") is True
