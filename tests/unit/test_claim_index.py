"""The claim query is served by an index on each engine, even beside many dead rows."""

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import later_many
from django_jobs.models import Job
from django_jobs.storage import get_storage
from tests.conftest import analyze_jobs
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def fill_table(ready: int = 20):
    """Failed and far-future rows (the kind that pile up), plus ``ready`` due ones."""
    later_many(jobs.record, [[f"f{i}"] for i in range(3000)], wait=3600)
    first = Job.objects.order_by("pk").values_list("pk", flat=True).first()
    Job.objects.filter(pk__lt=first + 1500).update(run_at=None, failed_at=timezone.now())
    later_many(jobs.record, [[f"r{i}"] for i in range(ready)])
    analyze_jobs()


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


def parked_and_far_future_rows(parked: int = 2000, later: int = 2000) -> None:
    """Rows a claim must never read: parked (claimable, no run_at: waiting for other jobs
    or a concurrency slot), due in 30 days, and failed, at several priorities, beside
    20 ready rows of priority 50 (behind every parked row and every lower priority's
    future row in the claim index's order)."""
    later_many(jobs.record, [[f"p{i}"] for i in range(parked)], priority=10)
    Job.objects.filter(run_at__isnull=False).update(run_at=None, waiting_for=1)
    later_many(jobs.record, [[f"l{i}"] for i in range(later)], priority=10, wait=30 * 86400)
    later_many(jobs.record, [[f"q{i}"] for i in range(parked)], priority=50)
    Job.objects.filter(run_at__isnull=False, priority=50).update(run_at=None, waiting_for=1)
    later_many(jobs.record, [[f"r{i}"] for i in range(20)], priority=50)
    fill_table(ready=0)


def handler_reads(action) -> int:
    """Index and table entries MySQL/MariaDB read while ``action`` ran (session counters)."""

    def reads() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SHOW SESSION STATUS LIKE 'Handler_read%%'")
            return sum(
                int(value) for name, value in cursor.fetchall() if name != "Handler_read_key"
            )

    before = reads()
    action()
    return reads() - before - 1  # the SHOW's own row


@pytest.mark.skipif("connection.vendor != 'mysql'", reason="MySQL/MariaDB's claim names priorities")
def test_a_claim_never_reads_parked_or_far_future_rows_on_mysql():
    parked_and_far_future_rows()
    storage = get_storage()
    assert storage.claimable_priorities() == ([10, 50], False)
    sql, params = storage.ready_select(None, 100, timezone.now(), "id")
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        row = dict(zip([c[0] for c in cursor.description], cursor.fetchone(), strict=True))
    # A range of the claim index on (priority, run_at), in its order: no sort.
    assert row["key"] == "django_jobs_claim_my_idx" and row["type"] == "range", row
    assert "filesort" not in str(row["Extra"]).lower(), row
    claimed: list = []
    reads = handler_reads(lambda: claimed.extend(storage.claim("w", None, 100, timezone.now())))
    assert sorted(job.args[0] for job in claimed) == sorted(f"r{i}" for i in range(20))
    # The 20 ready rows (index and row, and the UPDATE's primary-key reads), the range
    # ends and the priority look-ups: not the 4,000 parked and 2,000 future rows.
    assert reads < 200, reads


@pytest.mark.skipif("connection.vendor != 'mysql'", reason="MySQL/MariaDB's claim names priorities")
def test_priorities_beyond_the_named_ones_are_still_claimed_in_order(monkeypatch):
    storage = get_storage()
    monkeypatch.setattr(type(storage), "CLAIM_PRIORITIES", 2)
    for priority in (30, 10, 20, 40):
        later_many(jobs.record, [[f"{priority}-{i}"] for i in range(3)], priority=priority)
    assert storage.claimable_priorities() == ([10, 20], True)
    claimed = storage.claim("w", None, 12, timezone.now())
    assert [job.priority for job in claimed] == [10] * 3 + [20] * 3 + [30] * 3 + [40] * 3
    assert storage.claimable_priorities() == ([], False)
    assert storage.claim("w", None, 5, timezone.now()) == []
