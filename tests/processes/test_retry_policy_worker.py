"""The retry policy with a real worker process: what Retry, Snooze, Discard, retry_on,
discard_on and each back-off leave in attempts, snoozes, run_at and last_error."""

from __future__ import annotations

import signal

import pytest

from django_jobs.models import Job
from tests.conftest import wait_until
from tests.testapp import control_jobs as cj
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes


def settled(job_obj, attempts: int | None = None, snoozes: int | None = None) -> Job | None:
    """The row once it is no longer held and has the given counts (None: not yet)."""
    row = Job.objects.filter(pk=job_obj.pk).first()
    if row is None or row.locked_at is not None or not row.last_error:
        return None
    if attempts is not None and row.attempts != attempts:
        return None
    if snoozes is not None and (row.snoozes or 0) != snoozes:
        return None
    return row


def delay_of(row: Job) -> float:
    """Seconds from the start of the attempt that set run_at to run_at."""
    return (row.run_at - row.started_at).total_seconds()


@pytest.fixture
def worker(processes):
    proc = processes("jobs", "worker", "--index", "0", "--id", "0")
    yield proc
    proc.signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.output()[-3000:]


def wait_for(job_obj, what: str, **counts) -> Job:
    return wait_until(lambda: settled(job_obj, **counts), timeout=30, what=what)


def test_controls_with_a_worker(worker):
    snoozed = cj.snoozing.enqueue("snooze")
    retried = cj.retrying.enqueue("retry")
    last_retry = cj.retrying.enqueue("last retry", seconds=0, reason="not yet")
    discarded = cj.discarding.enqueue("discard")
    bounded = cj.snoozing.enqueue("bounded", seconds=0, reason="again")

    row = wait_for(snoozed, "the snooze", attempts=0, snoozes=1)
    assert row.last_error == "snoozed for 600 s: partner API rate limit"
    assert row.failed_at is None and 599 <= delay_of(row) <= 601

    row = wait_for(retried, "the retry", attempts=1)
    assert row.last_error == "retry requested in 30 s: the export is not ready yet"
    assert row.failed_at is None and 29 <= delay_of(row) <= 31

    row = wait_until(
        lambda: (r := settled(last_retry, attempts=3)) and r.failed_at and r,
        what="the last retry to fail",
    )
    assert row.last_error == "retry requested in 0 s: not yet; failed: attempt 3 of 3 was the last"
    assert row.run_at is None

    row = wait_for(discarded, "the discard", attempts=1)
    assert row.failed_at is not None and row.run_at is None
    assert row.last_error == "discarded: customer deleted"
    assert Execution.objects.filter(key="discard").count() == 1

    # Snoozing for 0 s comes straight back, MAX_SNOOZES (100) times, then fails.
    row = wait_until(
        lambda: (r := settled(bounded, snoozes=100)) and r.failed_at and r,
        timeout=60,
        what="100 snoozes",
    )
    assert row.attempts == 1  # every snooze gave its attempt back; the last run failed
    assert row.last_error == (
        "snoozed for 0 s: again; failed: snoozed 100 times already, the most "
        'JOBS["MAX_SNOOZES"] allows (100)'
    )
    assert Execution.objects.filter(key="bounded").count() == 101


def test_retry_on_and_discard_on_with_a_worker(worker):
    timeout = cj.retry_on_timeouts.enqueue("timeout")
    value = cj.retry_on_timeouts.enqueue("value", error="value")
    lookup = cj.discard_on_lookups.enqueue("lookup")
    runtime = cj.discard_on_lookups.enqueue("runtime", error="runtime")

    row = wait_for(timeout, "the listed exception to retry", attempts=1)
    assert row.failed_at is None and row.error_summary == "TimeoutError: timeout happened"
    assert 0.9 <= delay_of(row) <= 2  # the default back-off: 1 s after attempt 1

    row = wait_for(value, "the other exception to fail", attempts=1)
    assert row.failed_at is not None
    assert row.error_summary == (
        "failed without retrying (TimeoutError only are retried): ValueError: value happened"
    )

    row = wait_for(lookup, "the discard_on exception", attempts=1)
    assert row.failed_at is not None
    assert row.error_summary == "discarded: KeyError: 'lookup happened'"

    row = wait_for(runtime, "another exception to retry", attempts=1)
    assert row.failed_at is None and row.error_summary == "RuntimeError: runtime happened"


def test_each_backoff_with_a_worker(worker):
    polynomial = cj.failing_polynomial.enqueue("p")
    exponential = cj.failing_exponential.enqueue("e")
    fixed = cj.failing_fixed.enqueue("f")
    callable_ = cj.failing_callable.enqueue("c")
    broken = cj.failing_broken_backoff.enqueue("b")
    negative = cj.failing_negative_backoff.enqueue("n")

    # attempts ** 4: 1 s after the first attempt, 16 s after the second.
    row = wait_for(polynomial, "two polynomial attempts", attempts=2)
    assert 15.9 <= delay_of(row) <= 17
    row = wait_for(exponential, "an exponential attempt", attempts=1)
    assert 8 <= delay_of(row) <= 13  # 10 s ± 20 % jitter
    row = wait_for(fixed, "a fixed attempt", attempts=1)
    assert 44.9 <= delay_of(row) <= 46
    row = wait_for(callable_, "a callable's attempt", attempts=1)
    assert 6.9 <= delay_of(row) <= 8

    # A back-off that raises or returns nonsense: the default applies, and says so.
    for job_obj, why in [
        (broken, "ZeroDivisionError: no back-off today"),
        (negative, "ValueError: returned -5, not a number of seconds >= 0"),
    ]:
        row = wait_for(job_obj, "a broken back-off's second attempt", attempts=2)
        first_line = row.last_error.splitlines()[0]
        assert why in first_line and first_line.endswith("the default back-off applied (16 s)")
        assert 15.9 <= delay_of(row) <= 17
        assert row.error_summary.startswith("RuntimeError: ")
