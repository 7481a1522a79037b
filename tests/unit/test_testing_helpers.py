"""django_jobs.testing inside a test transaction, as a project's own tests would use it."""

import datetime as dt
import threading

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone

from django_jobs import UnknownQueue, job, later
from django_jobs.models import Job, JobStatus
from django_jobs.testing import (
    assert_enqueued,
    assert_not_enqueued,
    capture_jobs,
    enqueued_jobs,
    run_jobs,
)
from tests.testapp import jobs
from tests.testapp.models import Execution

# A test transaction, like django.test.TestCase: what project tests run in.
pytestmark = pytest.mark.django_db


@job
def countdown(n):
    """Enqueues itself with n - 1: one generation per round."""
    Execution.objects.create(key=f"countdown:{n}")
    if n > 0:
        countdown.enqueue(n - 1)


@job
def broken_sql():
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM django_jobs_no_such_table")


@job
def swallowed_integrity_error(key):
    Execution.objects.create(key=f"{key}:before")
    first = Execution.objects.create(key=f"{key}:first")
    try:
        Execution.objects.create(pk=first.pk, key=f"{key}:duplicate")
    except IntegrityError:
        pass  # a job that catches a database error and carries on


def keys() -> set[str]:
    return set(Execution.objects.values_list("key", flat=True))


def test_run_jobs_performs_jobs_in_the_test_transaction_without_threads():
    threads_before = threading.active_count()
    jobs.record.enqueue("a")
    jobs.send_email.enqueue("x@example.com", subject="hi")
    result = run_jobs()
    assert (result.succeeded, result.retried, result.failed, result.rounds) == (2, 0, 0, 1)
    assert keys() == {"a", "email:x@example.com:hi"}
    assert Job.objects.count() == 0  # DELETE_SUCCESSFUL_JOBS defaults to True
    assert threading.active_count() == threads_before
    assert run_jobs().attempts == 0


def test_jobs_run_in_claim_order():
    jobs.record.using(priority=90).enqueue("low")
    jobs.record.enqueue("normal")
    jobs.record.using(priority=1).enqueue("urgent")
    run_jobs()
    order = list(Execution.objects.order_by("id").values_list("key", flat=True))
    assert order == ["urgent", "normal", "low"]


def test_a_retry_waits_for_its_back_off_unless_scheduled_jobs_are_included():
    row = jobs.fail.enqueue("bad")
    result = run_jobs()
    assert (result.succeeded, result.retried, result.failed) == (0, 1, 0)
    [error] = result.errors
    assert (error.job_id, error.attempt, error.final) == (row.pk, 1, False)
    assert "ValueError: bad" in str(error)
    row.refresh_from_db()
    assert row.status == JobStatus.SCHEDULED and "ValueError: bad" in row.last_error
    # The second attempt's back-off is 2**4 = 16 s: long enough not to race the clock.
    assert run_jobs(include_scheduled=True, max_rounds=1).retried == 1
    row.refresh_from_db()
    assert row.attempts == 2 and row.run_at > timezone.now() + dt.timedelta(seconds=10)
    assert run_jobs().attempts == 0


def test_a_job_keeps_what_it_wrote_before_raising_and_succeeds_on_retry():
    jobs.fail_once.enqueue("k")
    assert run_jobs().retried == 1
    assert keys() == {"k:tried"}  # kept, as in a worker's autocommit
    again = run_jobs(include_scheduled=True)
    assert (again.succeeded, again.retried, again.failed) == (1, 0, 0)
    assert keys() == {"k:tried", "k"}


def test_a_failing_job_spends_the_configured_attempts():
    row = jobs.fail.enqueue("bad")
    result = run_jobs(include_scheduled=True)
    # MAX_ATTEMPTS is 3 in the test settings.
    assert (result.succeeded, result.retried, result.failed, result.rounds) == (0, 2, 1, 3)
    assert [(e.attempt, e.final) for e in result.errors] == [(1, False), (2, False), (3, True)]
    assert "3 attempts in 3 rounds: 0 succeeded, 2 to retry, 1 failed" in str(result)
    assert "ValueError: bad" in str(result)
    row.refresh_from_db()
    assert row.status == JobStatus.FAILED and row.attempts == 3
    only_once = jobs.fail_for_good.enqueue()
    assert run_jobs(include_scheduled=True).failed == 1
    only_once.refresh_from_db()
    assert only_once.attempts == 1 and "never works" in only_once.last_error


def test_jobs_enqueued_by_jobs_run_in_the_next_round_up_to_max_rounds():
    countdown.enqueue(5)
    result = run_jobs(max_rounds=2)
    assert (result.succeeded, result.rounds) == (2, 2)
    assert_enqueued(countdown, [3], count=1)
    assert run_jobs().succeeded == 4
    assert keys() == {f"countdown:{n}" for n in range(6)}
    with pytest.raises(ValueError, match="max_rounds"):
        run_jobs(max_rounds=0)


def test_queue_limits_the_run():
    jobs.record.enqueue("default queue")
    jobs.send_email.enqueue("x@example.com")
    assert run_jobs("email").succeeded == 1
    assert keys() == {"email:x@example.com:hello"}
    assert_enqueued(jobs.record, ["default queue"])
    assert run_jobs(["default", "slow"]).succeeded == 1
    with pytest.raises(UnknownQueue):
        run_jobs("emails")


def test_scheduled_jobs_wait_unless_included():
    jobs.record.using(wait=3600).enqueue("later")
    assert run_jobs().attempts == 0
    assert run_jobs(include_scheduled=True).succeeded == 1
    assert keys() == {"later"}


def test_async_jobs_write_through_the_test_connection():
    jobs.async_record.enqueue("async")
    assert run_jobs().succeeded == 1
    assert keys() == {"async"}


def test_context_progress_and_the_groups_delete_options():
    groups = [{"QUEUE": "*", "MAX_ATTEMPTS": 1, "DELETE_SUCCESSFUL_JOBS": False}]
    with override_settings(JOBS={"QUEUES": ["default", "email", "slow"], "WORKERS": groups}):
        row = jobs.with_context.enqueue("ctx")
        assert run_jobs().succeeded == 1
        kept_failed = jobs.fail.enqueue()
        assert run_jobs(include_scheduled=True).failed == 1
    row.refresh_from_db()
    assert row.status == JobStatus.SUCCEEDED
    assert (row.progress, row.progress_message) == (50, "half way")
    assert keys() == {f"ctx:1:{row.pk}"}
    assert Job.objects.filter(pk=kept_failed.pk, failed_at__isnull=False).exists()


def test_a_database_error_in_a_job_leaves_the_test_transaction_usable():
    broken = broken_sql.enqueue()
    caught = swallowed_integrity_error.enqueue("dup")
    jobs.record.enqueue("after")
    result = run_jobs()
    assert (result.succeeded, result.retried) == (2, 1)
    assert result.errors[0].job_id == broken.pk
    assert "django_jobs_no_such_table" in result.errors[0].error
    assert Job.objects.get(pk=broken.pk).attempts == 1
    assert not Job.objects.filter(pk=caught.pk).exists()
    # The IntegrityError marked the transaction for rollback: the job's writes went with
    # it, the test's transaction did not.
    assert "after" in keys() and "dup:before" not in keys()
    Execution.objects.create(key="still usable")


def test_an_unregistered_job_is_an_errored_attempt():
    row = Job.objects.create(name="tests.gone.job", run_at=timezone.now())
    result = run_jobs()
    assert result.retried == 1 and "JobNotRegistered" in result.errors[0].error
    row.refresh_from_db()
    assert row.attempts == 1


def test_assert_enqueued_matches_arguments_as_stored():
    jobs.send_email.enqueue("a@example.com", subject="hi")
    jobs.send_email.enqueue("a@example.com", subject="hi")
    jobs.record.using(wait=60).enqueue(["x", 1])
    rows = assert_enqueued(jobs.send_email, ("a@example.com",), {"subject": "hi"}, count=2)
    assert [r.args for r in rows] == [["a@example.com"], ["a@example.com"]]
    assert_enqueued(jobs.send_email, queue="email")
    assert_enqueued("tests.testapp.jobs.record", [("x", 1)], {}, count=1)
    with pytest.raises(AssertionError) as raised:
        assert_enqueued(jobs.send_email, ["b@example.com"], queue="default", count=1)
    message = str(raised.value)
    assert message.splitlines()[0] == (
        "Expected tests.testapp.jobs.send_email(\"b@example.com\") on queue 'default' to "
        "be enqueued once; 0 enqueued call(s) match."
    )
    assert "Enqueued calls of tests.testapp.jobs.send_email (2):" in message
    assert (
        'send_email("a@example.com", subject="hi") queue=\'email\' priority=1  -- '
        "args [\"a@example.com\"] != [\"b@example.com\"]; queue 'email' != 'default'"
    ) in message
    assert "Other jobs enqueued: tests.testapp.jobs.record x1" in message
    with pytest.raises(AssertionError, match="to be enqueued 3 times; 2 enqueued"):
        assert_enqueued(jobs.send_email, count=3)
    with pytest.raises(AssertionError, match="No call of tests.testapp.jobs.noop"):
        assert_enqueued(jobs.noop)
    with pytest.raises(TypeError, match="cannot be stored as JSON"):
        assert_enqueued(jobs.record, [object()])


def test_assert_not_enqueued_and_enqueued_jobs():
    assert_not_enqueued(jobs.record)
    first = jobs.record.enqueue("one")
    jobs.send_email.enqueue("a@example.com")
    assert_not_enqueued(jobs.record, ["two"])
    assert_not_enqueued(jobs.record, queue="email")
    with pytest.raises(AssertionError) as raised:
        assert_not_enqueued(jobs.record, ["one"])
    assert "not to be enqueued; 1 enqueued call(s) match." in str(raised.value)
    assert f"#{first.pk} record(\"one\") queue='default'" in str(raised.value)
    assert [r.name for r in enqueued_jobs()] == [
        "tests.testapp.jobs.record",
        "tests.testapp.jobs.send_email",
    ]
    assert [r.pk for r in enqueued_jobs(jobs.record)] == [first.pk]
    assert enqueued_jobs(queue="email").count() == 1
    run_jobs()
    assert not enqueued_jobs().exists()


def test_enqueued_jobs_are_the_waiting_ones_only():
    jobs.fail_for_good.enqueue()
    run_jobs()
    assert Job.objects.failed().count() == 1
    assert not enqueued_jobs().exists()
    assert_not_enqueued(jobs.fail_for_good)


def test_capture_jobs_collects_what_the_block_enqueues():
    jobs.record.enqueue("before")
    with capture_jobs() as captured:
        jobs.record.enqueue("inside")
        later(jobs.send_email, ["a@example.com"], wait=dt.timedelta(hours=1))
        assert captured == []
    assert [(j.name, j.args) for j in captured] == [
        ("tests.testapp.jobs.record", ["inside"]),
        ("tests.testapp.jobs.send_email", ["a@example.com"]),
    ]
    with capture_jobs(jobs.send_email) as emails:
        jobs.record.enqueue("ignored")
        jobs.send_email.enqueue("b@example.com")
    assert [j.args for j in emails] == [["b@example.com"]]


@pytest.mark.django_db(transaction=True)
def test_run_jobs_outside_a_transaction_commits_as_it_goes():
    assert not connection.in_atomic_block
    jobs.fail_once.enqueue("auto")
    result = run_jobs(include_scheduled=True)
    assert (result.succeeded, result.retried) == (1, 1)
    assert keys() == {"auto:tried", "auto"}
    with transaction.atomic():
        jobs.record.enqueue("in atomic")
        assert run_jobs().succeeded == 1
    assert "in atomic" in keys()
