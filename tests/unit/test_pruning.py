"""Pruning: which rows go, in batches of one short DELETE each, and which rows stay."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from django_jobs import clock, registry
from django_jobs.models import Job, ScheduleRun, Worker
from django_jobs.pruning import prune
from django_jobs.recurring.schedule import SOURCE_BUILTIN, all_schedules
from django_jobs.recurring.scheduler import last_run
from tests.conftest import analyze_jobs

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def jobs_settings(**prune_options) -> dict:
    from django.conf import settings

    return {**settings.JOBS, "PRUNE": prune_options}


def make_jobs(count: int, **fields) -> list[int]:
    """``count`` jobs with ``fields``; their ids (bulk_create returns none on MySQL)."""
    last = Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    Job.objects.bulk_create(
        [Job(name="tests.testapp.jobs.record", args=[i], **fields) for i in range(count)],
        batch_size=500,
    )
    return list(Job.objects.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True))


def make_worker(identity: str, age: timedelta) -> None:
    Worker.objects.create(
        identity=identity, host="h", pid=1, heartbeat_at=clock.now() - age, queues="*"
    )


@contextmanager
def statements():
    """Every statement this connection runs inside the block, as (sql, params)."""
    seen: list[tuple[str, tuple]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, tuple(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


def deletes(seen) -> list[str]:
    """The batched DELETEs (not the one of unused concurrency-key lock rows)."""
    return [
        sql
        for sql, _ in seen
        if sql.lstrip().upper().startswith("DELETE") and "limitlock" not in sql
    ]


def a_table_of_every_kind() -> dict[str, set[int]]:
    now = clock.now()
    keep, go = set(), set()
    go |= set(make_jobs(3, finished_at=now - 2 * DAY))
    keep |= set(make_jobs(2, finished_at=now - HOUR))
    go |= set(make_jobs(2, failed_at=now - 31 * DAY, last_error="E"))
    keep |= set(make_jobs(2, failed_at=now - 29 * DAY, last_error="E"))
    # Never touched, however old: ready, scheduled later, running (even one that also
    # carries an old finish time, which no code writes, to see the lock wins).
    keep |= set(make_jobs(2, run_at=now - 40 * DAY, created_at=now - 40 * DAY))
    keep |= set(make_jobs(2, run_at=now + DAY, created_at=now - 40 * DAY))
    keep |= set(make_jobs(1, run_at=now - 40 * DAY, locked_at=now - 40 * DAY, locked_by="w"))
    keep |= set(make_jobs(1, locked_at=now - 3 * DAY, locked_by="w2", finished_at=now - 3 * DAY))
    make_worker("dead", 2 * HOUR)
    make_worker("dead-long-ago", 90 * DAY)
    make_worker("quiet", 30 * 60 * timedelta(seconds=1))
    make_worker("live", timedelta(0))
    return {"keep": keep, "go": go}


def test_prune_deletes_old_finished_and_failed_jobs_and_dead_workers_only():
    rows = a_table_of_every_kind()
    report = prune()
    assert (report.succeeded, report.failed, report.workers) == (3, 2, 2)
    assert set(Job.objects.values_list("pk", flat=True)) == rows["keep"]
    # HEARTBEAT_TIMEOUT is 60 s in the test settings: the age is max(10 x 60 s, 1 h).
    assert set(Worker.objects.values_list("identity", flat=True)) == {"quiet", "live"}
    assert prune().total == 0


def test_ages_come_from_the_settings_and_none_keeps_the_rows():
    now = clock.now()
    make_jobs(2, finished_at=now - 10 * 60 * timedelta(seconds=1))
    make_jobs(3, failed_at=now - 365 * DAY, last_error="E")
    with override_settings(JOBS=jobs_settings(SUCCEEDED_AFTER=300, FAILED_AFTER=None)):
        report = prune()
    assert (report.succeeded, report.failed) == (2, 0)
    assert Job.objects.failed().count() == 3
    with override_settings(JOBS=jobs_settings(FAILED_AFTER=timedelta(days=400))):
        assert prune().failed == 0
    with override_settings(JOBS=jobs_settings(FAILED_AFTER=timedelta(days=300))):
        assert prune().failed == 3


@pytest.mark.parametrize(("rows", "expected_deletes"), [(2500, 3), (2000, 2), (999, 1)])
def test_each_batch_is_one_delete_of_at_most_batch_size_rows(rows, expected_deletes):
    make_jobs(rows, finished_at=clock.now() - 2 * DAY)
    with override_settings(JOBS=jobs_settings(BATCH_SIZE=1000)), statements() as seen:
        report = prune()
    assert report.succeeded == rows
    assert len(deletes(seen)) == expected_deletes == report.batches
    for sql in deletes(seen):
        # ids listed, never a subquery (MySQL refuses LIMIT inside IN) nor a whole range.
        assert "SELECT" not in sql.upper()
        in_list = re.search(r" IN \(([^)]*)\)", sql).group(1)
        assert 1 <= in_list.count("%s") <= 1000
    assert not Job.objects.exists()


def test_a_batch_size_of_one_thousand_is_the_default():
    make_jobs(1001, finished_at=clock.now() - 2 * DAY)
    with statements() as seen:
        prune()
    assert len(deletes(seen)) == 2


def test_dry_run_deletes_nothing_and_reports_what_a_run_deletes():
    a_table_of_every_kind()
    before = Job.objects.count(), Worker.objects.count()
    with statements() as seen:
        dry = prune(dry_run=True)
    assert deletes(seen) == []
    assert (Job.objects.count(), Worker.objects.count()) == before
    assert dry.dry_run and dry.counts == prune().counts
    assert dry.total == 7


def test_a_failed_job_retried_between_the_select_and_the_delete_is_kept():
    now = clock.now()
    ids = make_jobs(3, failed_at=now - 40 * DAY, last_error="E")
    retried = ids[1]
    done = []

    def retry_first(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("DELETE") and not done:
            done.append(1)
            # What the admin's Retry writes, landing between pruning's two statements.
            Job.objects.filter(pk=retried).update(failed_at=None, run_at=now, last_error="")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(retry_first):
        report = prune()
    assert report.failed == 2
    assert list(Job.objects.values_list("pk", flat=True)) == [retried]
    assert Job.objects.ready().filter(pk=retried).exists()


def explain(sql: str, params: tuple) -> str:
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        return "\n".join(" ".join(str(c) for c in row) for row in cursor.fetchall())


@pytest.mark.parametrize(
    ("kind", "column", "index"),
    [("succeeded", "finished_at", "finished"), ("failed", "failed_at", "failed")],
)
def test_the_batch_select_reads_the_finish_or_failure_index(kind, column, index):
    now = clock.now()
    # The rows that pile up around them: many ready and scheduled jobs, some recent.
    make_jobs(3000, run_at=now - HOUR)
    make_jobs(300, **{column: now - 40 * DAY}, last_error="E")
    make_jobs(300, **{column: now - HOUR}, last_error="E")
    analyze_jobs()
    with override_settings(JOBS=jobs_settings(BATCH_SIZE=100)), statements() as seen:
        report = prune()
    assert report.counts[kind] == 300
    selects = [
        (sql, params)
        for sql, params in seen
        if sql.lstrip().upper().startswith("SELECT") and f"{column}" in sql and "LIMIT" in sql
    ]
    assert selects
    name = {"mysql": f"django_jobs_{index}_my_idx"}.get(
        connection.vendor, f"django_jobs_{index}_idx"
    )
    for sql, params in selects[:2]:
        plan = explain(sql, params)
        assert name in plan, plan


def test_the_command_says_how_many_rows_of_each_kind_went():
    a_table_of_every_kind()
    out = StringIO()
    call_command("jobs", "prune", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "Would delete 3 succeeded jobs" in text and "Would delete 2 failed jobs" in text
    assert "Would delete 2 dead worker rows" in text
    assert Job.objects.count() == 15
    out = StringIO()
    call_command("jobs", "prune", stdout=out)
    text = out.getvalue()
    assert re.search(r"Deleted 3 succeeded jobs\nDeleted 2 failed jobs\nDeleted 2 dead", text)
    assert re.search(r"in \d+ batches", text)
    assert Job.objects.count() == 10


def test_the_built_in_job_prunes():
    definition = registry.get("django_jobs.prune")
    make_jobs(4, finished_at=clock.now() - 2 * DAY)
    definition.perform()
    assert not Job.objects.exists()


def make_runs(key: str, *ages: timedelta) -> list[int]:
    now = clock.now()
    return [
        ScheduleRun.objects.create(key=key, tick=now - age, enqueued_at=now - age).pk
        for age in ages
    ]


def test_old_schedule_history_goes_but_each_schedule_keeps_its_last_run():
    old_a = make_runs("a", 40 * DAY, 35 * DAY)
    recent_a = make_runs("a", DAY)
    old_b, last_b = make_runs("b", 40 * DAY, 39 * DAY)
    recent_c = make_runs("c", HOUR)
    assert prune(dry_run=True).history == 3
    report = prune()
    assert report.history == 3
    assert set(ScheduleRun.objects.values_list("pk", flat=True)) == {*recent_a, last_b, *recent_c}
    assert not ScheduleRun.objects.filter(pk__in=[*old_a, old_b]).exists()
    assert last_run("b").pk == last_b
    with override_settings(JOBS=jobs_settings(HISTORY_AFTER=None)):
        make_runs("a", 50 * DAY)
        assert prune().history == 0


def test_the_built_in_schedule_follows_the_prune_setting():
    with override_settings(JOBS=jobs_settings()):  # the default PRUNE, {}
        schedule = all_schedules()["django_jobs.prune"]
    assert (schedule.job, schedule.cron, schedule.queue) == (
        "django_jobs.prune",
        "17 * * * *",
        "default",
    )
    assert schedule.source == SOURCE_BUILTIN
    assert registry.get(schedule.job).func.__module__ == "django_jobs.jobs"
    with override_settings(JOBS=jobs_settings(CRON="@daily", QUEUE="slow")):
        schedule = all_schedules()["django_jobs.prune"]
        assert (schedule.cron, schedule.queue) == ("@daily", "slow")
    for off in (None, False):
        with override_settings(JOBS={**jobs_settings(), "PRUNE": off}):
            assert "django_jobs.prune" not in all_schedules()


@pytest.mark.skipif(
    "connection.vendor == 'sqlite'", reason="SQLite has one writer: a batch holds it (ms)"
)
def test_a_claim_does_not_wait_for_a_batch_that_holds_its_locks():
    from django.db import connections, transaction

    from django_jobs import later_many
    from django_jobs.storage import get_storage
    from tests.testapp import jobs

    doomed = make_jobs(200, finished_at=clock.now() - 2 * DAY)
    later_many(jobs.record, [[f"r{i}"] for i in range(5)])
    holding, release = threading.Event(), threading.Event()

    def batch_left_open() -> None:
        # A pruning DELETE whose transaction stays open, as if the batch were slow.
        try:
            with transaction.atomic():
                Job.objects.filter(pk__in=doomed)._raw_delete("default")
                holding.set()
                release.wait(10)
        finally:
            connections["default"].close()

    thread = threading.Thread(target=batch_left_open)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        claimed = get_storage().claim("w", None, 10, clock.now())
        elapsed = time.monotonic() - started
    finally:
        release.set()
        thread.join(15)
    assert len(claimed) == 5 and elapsed < 1.0, elapsed
    assert not Job.objects.filter(pk__in=doomed).exists()


@override_settings(USE_TZ=False)
def test_under_use_tz_false_ages_are_read_in_utc():
    now = clock.now()  # naive UTC
    assert now.tzinfo is None
    old = make_jobs(1500, finished_at=now - 2 * DAY)
    recent = make_jobs(3, finished_at=now - HOUR)
    make_worker("dead", 2 * HOUR)
    with override_settings(JOBS=jobs_settings(BATCH_SIZE=1000)):
        report = prune()
    assert (report.succeeded, report.workers, report.batches) == (1500, 1, 3)
    assert not Job.objects.filter(pk__in=old).exists()
    assert set(Job.objects.values_list("pk", flat=True)) == set(recent)


def test_jobs_schedule_lists_the_built_in_prune_schedule():
    out = StringIO()
    with override_settings(JOBS=jobs_settings(CRON="@daily")):
        call_command("jobs", "schedule", stdout=out)
    text = out.getvalue()
    assert "django_jobs.prune  [active]" in text
    assert "job:       django_jobs.prune  (built-in)" in text and "cron:      @daily" in text
    out = StringIO()
    with override_settings(JOBS={**jobs_settings(), "PRUNE": None}):
        call_command("jobs", "schedule", stdout=out)
    assert "django_jobs.prune" not in out.getvalue()
