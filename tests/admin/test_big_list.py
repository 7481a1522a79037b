"""The job list on a large table: how many queries a page costs, and which index serves them.

Timings are measured by ``bench/admin_changelist.py``; these tests pin what makes them:
no ``COUNT(*)`` of the table, no query per row, deep pages read ids from an index first,
and on PostgreSQL the default order is an index walk, not a sort of the table.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_jobs.admin import paging as admin_paging
from django_jobs.models import Job
from tests.conftest import analyze_jobs

# ANALYZE TABLE commits on MySQL/MariaDB: a transaction per test would not roll back.
pytestmark = pytest.mark.django_db(transaction=True)
URL = "/admin/django_jobs/job/"


def fill(rows: int) -> None:
    """``rows`` jobs in several states and priorities, in one INSERT, then ANALYZE."""
    now = timezone.now()
    kinds = [
        {"run_at": now},
        {"run_at": None, "failed_at": now, "attempts": 3, "last_error": "ValueError: x"},
        {"run_at": now, "finished_at": now, "attempts": 1},
        {"run_at": now + timezone.timedelta(days=1)},
    ]
    Job.objects.bulk_create(
        Job(name="tests.testapp.jobs.noop", priority=(i % 5) * 10, **kinds[i % 4])
        for i in range(rows)
    )
    analyze_jobs()


def job_queries(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "django_jobs_job" in q["sql"]]


@pytest.fixture
def small_caps(monkeypatch):
    monkeypatch.setattr(admin_paging, "EXACT_UP_TO", 200)
    monkeypatch.setattr(admin_paging, "DEFER_FROM", 100)


def test_first_page_costs_a_capped_count_and_one_select(admin_client, small_caps):
    fill(300)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(URL)
    assert response.status_code == 200
    sqls = job_queries(queries)
    # The capped count, the engine's estimate of the table's size (PostgreSQL's pg_class,
    # InnoDB's statistics), the page: no COUNT(*) of the table, no second count
    # (show_full_result_count), nothing per row.
    estimate = [] if connection.vendor == "sqlite" else ["estimate"]
    assert [kind(sql) for sql in sqls] == ["capped count", *estimate, "page"], sqls
    assert "LIMIT 201" in sqls[0] and "LIMIT 50" in sqls[-1]
    assert len(queries.captured_queries) == len(sqls) + 2  # the session and the user


def kind(sql: str) -> str:
    if "pg_class" in sql or "information_schema" in sql:
        return "estimate"
    if sql.upper().startswith("SELECT COUNT(*)"):
        return "capped count"
    return "page"


def test_a_deep_page_reads_its_ids_first_then_its_rows_in_order(admin_client, small_caps):
    fill(300)
    first = admin_client.get(URL, {"p": 1}).context["cl"]
    assert first.paginator.count_kind in ("estimate", "lower bound")
    expected = list(
        Job.objects.order_by("priority", "run_at", "id").values_list("pk", flat=True)[100:150]
    )
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(URL, {"p": 3})
    assert response.status_code == 200
    assert [job.pk for job in response.context["cl"].result_list] == expected
    sqls = job_queries(queries)
    sqls = [sql for sql in sqls if kind(sql) != "estimate"]
    assert len(sqls) == 3, sqls  # capped count, ids, rows
    by_ids = connection.ops.quote_name("django_jobs_job") + "." + connection.ops.quote_name("id")
    assert "OFFSET 100" in sqls[1] and f"{by_ids} IN" not in sqls[1]
    assert f"{by_ids} IN" in sqls[2] and "OFFSET" not in sqls[2]


def test_the_paginator_defers_only_from_deep_pages(small_caps):
    fill(300)
    queryset = Job.objects.order_by("priority", "run_at", "id")
    paginator = admin_paging.EstimatingPaginator(queryset, 50)
    paginator.count = 300  # as an estimate would say
    shallow, deep = paginator.page(2), paginator.page(4)
    assert shallow.object_list.query.low_mark == 50  # a plain slice
    assert [job.pk for job in deep] == list(queryset.values_list("pk", flat=True)[150:200])


def plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql)
        return "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the index is PostgreSQL's")
def test_default_order_is_walked_in_the_order_index_on_postgresql(admin_client, small_caps):
    fill(3000)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(URL)
        admin_client.get(URL, {"p": 20})
    sqls = [sql for sql in job_queries(queries) if kind(sql) == "page"]
    page_one, ids_of_deep_page = sqls[0], sqls[1]
    text = plan(page_one)
    assert "django_jobs_order_idx" in text and "Sort" not in text, text
    text = plan(ids_of_deep_page)
    assert "Index Only Scan using django_jobs_order_idx" in text, text
    assert "Sort" not in text, text
