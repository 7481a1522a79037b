"""The claim query is served by an index on each engine, even beside many dead rows."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import later_many
from django_jobs.models import Job
from django_jobs.storage import get_storage
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def fill_table(ready: int = 20):
    """Failed and far-future rows (the kind that pile up), plus ``ready`` due ones."""
    later_many(jobs.record, [[f"f{i}"] for i in range(3000)], wait=3600)
    first = Job.objects.order_by("pk").values_list("pk", flat=True).first()
    Job.objects.filter(pk__lt=first + 1500).update(run_at=None, failed_at=timezone.now())
    later_many(jobs.record, [[f"r{i}"] for i in range(ready)])
    with connection.cursor() as cursor:
        cursor.execute(
            {"postgresql": "ANALYZE django_jobs_job", "mysql": "ANALYZE TABLE django_jobs_job"}.get(
                connection.vendor, "ANALYZE"
            )
        )
        if connection.vendor == "mysql":
            cursor.fetchall()


def plan(queues=None) -> str:
    storage = get_storage()
    sql, params = storage.ready_select(queues, 10, timezone.now())
    if connection.vendor == "sqlite":
        sql = "EXPLAIN QUERY PLAN " + sql
    else:
        sql = "EXPLAIN " + sql
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())


@pytest.mark.parametrize("queues", [None, ("default", "email")])
def test_a_backlog_is_claimed_in_order_from_the_claim_index(queues):
    fill_table(ready=5000)
    text = plan(queues)
    expected = {
        "postgresql": "django_jobs_claim_idx",
        "sqlite": "django_jobs_claim_idx",
        "mysql": "django_jobs_claim_my_idx",
    }[connection.vendor]
    assert expected in text, text
    assert "filesort" not in text.lower(), text
    assert "TEMP B-TREE" not in text.upper(), text


def test_claim_picks_ready_rows_beside_dead_ones():
    fill_table()
    claimed = get_storage().claim("w", None, 100, timezone.now())
    assert len(claimed) == 20
    assert all(c.args[0].startswith("r") for c in claimed)
    assert timezone.now() - dt.timedelta(minutes=1) < Job.objects.running().first().locked_at


@pytest.mark.skipif("connection.vendor == 'sqlite'", reason="SQLite's planner needs ANALYZE")
def test_with_few_rows_due_the_claim_reads_the_due_index_not_every_future_row():
    fill_table(ready=3)
    text = plan()
    expected = {"postgresql": "django_jobs_due_idx", "mysql": "django_jobs_due_my_idx"}
    assert expected[connection.vendor] in text, text
