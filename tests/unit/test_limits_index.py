"""The claim with concurrency limits, and the end of a limited claim, read through indexes.

Every SELECT that ``claim_limited`` and ``record`` (freeing a slot) run on the job table is
EXPLAINed on each engine beside thousands of other rows (finished, failed, ready, limited
rows running and waiting on 100 keys) and must not scan the table.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import clock, later_many
from django_jobs.models import Job
from django_jobs.storage import OUTCOME_SUCCEEDED, Outcome
from tests.conftest import analyze_jobs
from tests.testapp import jobs, limit_jobs
from tests.unit.test_owner_index import assert_no_table_scan, captured, explain

pytestmark = pytest.mark.django_db(transaction=True)

KEYS = 100


def fill_table() -> None:
    # Finished, failed and ready rows, as the owner index's test has them.
    later_many(jobs.record, [[f"r{i}"] for i in range(3000)])
    ids = list(Job.objects.order_by("pk").values_list("pk", flat=True))
    now = clock.now()
    Job.objects.filter(pk__in=ids[:1000]).update(finished_at=now)
    Job.objects.filter(pk__in=ids[1000:1800]).update(failed_at=now, run_at=None)
    # 20 limited rows per key: one running, 18 waiting (parked), one ready.
    # Ahead of the plain ones in claim order: the claim meets them first.
    later_many(
        limit_jobs.per_customer, [[f"c{k}", n] for n in range(20) for k in range(KEYS)], priority=10
    )
    limited = list(Job.objects.filter(concurrency_key__isnull=False).order_by("pk"))
    for n, row in enumerate(limited):
        if n < KEYS:
            row.locked_at, row.locked_by, row.claim_token = now, "host:1:w", 1
        elif n < KEYS * 19:
            row.run_at = None
        row.save()
    analyze_jobs()


def check(queries: list[tuple[str, list]]) -> None:
    for sql, params in queries:
        plan = explain(sql, params)
        # MySQL reads the un-park's derived table (a few rows) whole: not the job table.
        assert_no_table_scan("\n".join(x for x in plan.splitlines() if "<derived" not in x))
        if "COUNT(*)" in sql:
            # Claimed rows of the keys: the planner may read them by key or among the
            # few locked rows (the lock and owner indexes hold only those).
            expected = ("concurrency_idx", "locked", "owner")
        elif "MIN(priority)" in sql:
            # MySQL's look-up of the claimable priorities: one end of a range of the
            # claim index, read without touching a row.
            expected = ("Select tables optimized away",)
        elif "concurrency_key = " in sql or "DISTINCT concurrency_key" in sql:
            expected = ("blocked_idx",) if connection.vendor != "mysql" else ("concurrency_idx",)
        else:
            expected = ("claim", "due")  # the claim's pick
        assert any(name in plan for name in expected), (sql, plan)


def test_the_limited_claim_reads_indexes(limited_storage):
    storage = limited_storage
    fill_table()
    claimed: list = []
    queries = captured(lambda: claimed.extend(storage.claim("w", None, 50, timezone.now())))
    # Every key's slot is taken: its ready rows were parked, and 50 plain ones claimed.
    assert len(claimed) == 50 and all(job.concurrency_key is None for job in claimed)
    assert Job.objects.blocked().count() == KEYS * 19
    assert any("concurrency_key IN" in sql for sql, _ in queries)
    check(queries)


def test_ending_a_limited_claim_reads_indexes(limited_storage):
    storage = limited_storage
    fill_table()
    holders = [
        row.job for row in storage.held_by("host:1:w") if row.job.concurrency_key is not None
    ][:10]
    outcomes = [Outcome(job, OUTCOME_SUCCEEDED) for job in holders]
    queries = captured(lambda: storage.record(outcomes, timezone.now()))
    assert Job.objects.blocked().count() == KEYS * 18 - 10  # one un-parked per freed slot
    assert any("UNION ALL" in sql for sql, _ in queries)
    check(queries)
