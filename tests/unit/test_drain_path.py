"""The no-op drain's hot path, in exact counts: a claim is one statement (on MySQL/MariaDB
a look-up of the claimable priorities, then two in one transaction), the outcomes of a
claimed batch one more, under its claim token; a worker draining a backlog writes no
more than that per batch."""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.test import override_settings

from django_jobs import clock, later_many
from django_jobs.conf import jobs_settings
from django_jobs.models import Job
from django_jobs.registry import all_jobs
from django_jobs.runtime import flusher
from django_jobs.runtime.worker import Worker
from django_jobs.storage import OUTCOME_SUCCEEDED, Outcome, get_storage
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)

#: Statements a claim runs on the job table: one; on MySQL/MariaDB the look-up of the
#: claimable priorities (one statement for rows of one priority), a SELECT and an UPDATE.
CLAIM_STATEMENTS = {"mysql": 3}


def job_statements(monkeypatch) -> list[str]:
    """Every statement on the job table from now on, from any thread, first words only."""
    seen: list[str] = []
    execute = CursorWrapper.execute

    def noting(cursor, sql, params=None):
        if "django_jobs_job" in sql and "django_jobs_jobs" not in sql:
            seen.append(" ".join(sql.split()[:6]).upper())
        return execute(cursor, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", noting)
    return seen


def plain_storage(monkeypatch):
    """The storage, claiming without concurrency limits (the plain claim: a worker that
    ran earlier in this process may have switched it to the limited one)."""
    storage = get_storage()
    monkeypatch.setattr(storage, "limited", False)
    return storage


def test_a_batch_is_claimed_in_one_statement_and_recorded_in_one_more(monkeypatch):
    later_many(jobs.noop, [[] for _ in range(150)])
    storage = plain_storage(monkeypatch)
    seen = job_statements(monkeypatch)
    claimed = storage.claim("w", None, 100, clock.now())
    assert len(claimed) == 100
    assert len(seen) == CLAIM_STATEMENTS.get(connection.vendor, 1), seen
    seen.clear()
    outcomes = [Outcome(job, OUTCOME_SUCCEEDED, started_at=time.time()) for job in claimed]
    assert storage.record(outcomes, clock.now()) == 100
    assert [sql.split()[0] for sql in seen] == ["DELETE"]
    assert Job.objects.count() == 50


def test_outcomes_under_a_claim_taken_over_are_refused(monkeypatch):
    later_many(jobs.noop, [[] for _ in range(10)])
    storage = plain_storage(monkeypatch)
    claimed = storage.claim("w", None, 10, clock.now())
    # Another worker recovered and claimed four of them meanwhile: a new token.
    taken = [job.id for job in claimed[:4]]
    Job.objects.filter(pk__in=taken).update(claim_token=12345)
    outcomes = [Outcome(job, OUTCOME_SUCCEEDED, started_at=time.time()) for job in claimed]
    assert storage.record(outcomes, clock.now()) == 6
    assert sorted(Job.objects.values_list("pk", flat=True)) == sorted(taken)


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_claim_finds_the_picked_rows_by_primary_key(monkeypatch):
    later_many(jobs.noop, [[] for _ in range(3000)])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_job")
    captured: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        if sql.startswith("UPDATE"):
            captured.append((sql, list(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        plain_storage(monkeypatch).claim("w", None, 100, clock.now())
    ((sql, params),) = captured
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Not a hash join over the whole table, whose size (dead rows too) each claim would pay.
    assert "Seq Scan" not in plan, plan
    assert "django_jobs_job_pkey" in plan, plan


def test_a_worker_writes_each_claimed_batch_with_one_statement(monkeypatch):
    later_many(jobs.noop, [[] for _ in range(250)])
    # Only the main thread writes (the flusher would write a batch that waited longer).
    monkeypatch.setattr(flusher, "FLUSH_INTERVAL", 3600.0)
    storage = get_storage()
    sizes: list[int] = []
    claim = type(storage).claim

    def counted(self, *args, **kwargs):
        jobs_claimed = claim(self, *args, **kwargs)
        sizes.append(len(jobs_claimed))
        return jobs_claimed

    monkeypatch.setattr(type(storage), "claim", counted)
    seen = job_statements(monkeypatch)
    group = {**settings.JOBS["WORKERS"][0], "BATCH_SIZE": 100, "THREADS": 1}
    with override_settings(JOBS={**settings.JOBS, "WORKERS": [group]}):
        worker = Worker(jobs_settings().workers[0], "drain", workoff=True)
        worker.run()
    assert Job.objects.count() == 0 and worker.jobs_done == 250
    batches = [size for size in sizes if size]
    assert sum(batches) == 250 and max(batches) <= 100
    # One DELETE per claimed batch, and one start written ahead: the first job of its name
    # in this process (worker._dispatch). The claims are counted by the first test (the
    # test app declares concurrency limits, so a worker here claims through them).
    deletes = [sql for sql in seen if sql.startswith("DELETE")]
    assert len(deletes) == len(batches), seen
    assert sum(1 for sql in seen if "SET STARTED_AT" in sql) == 1, seen


def test_an_argument_check_says_the_same_from_its_cache():
    definition = all_jobs()[jobs.record.name]
    errors = []
    for _ in range(2):
        with pytest.raises(TypeError) as raised:
            definition.check_arguments([], {"kee": 1})
        errors.append(str(raised.value))
        with pytest.raises(TypeError) as raised:
            definition.check_arguments([1, 2, 3], {})
        errors.append(str(raised.value))
        definition.check_arguments(["k"], {"sleep": 0})
    assert errors[:2] == errors[2:]
    assert "did you mean 'key'" in errors[0] and "too many positional" in errors[1]
