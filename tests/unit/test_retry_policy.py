"""Per-job retry policy through run_jobs: Retry, Snooze, Discard, retry_on, discard_on,
back-off policies, MAX_SNOOZES, and bad input. With a real worker:
tests/processes/test_retry_policy_worker.py."""

import math
from datetime import timedelta

import pytest
from django.test import override_settings

from django_jobs import Discard, Retry, Snooze, job
from django_jobs.backoff import (
    DEFAULT,
    Exponential,
    Fixed,
    Polynomial,
    delay_for,
    resolve,
)
from django_jobs.clock import now
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests.settings import JOBS as TEST_JOBS
from tests.testapp import control_jobs as cj

pytestmark = pytest.mark.django_db


def one(job_obj):
    return Job.objects.get(pk=job_obj.pk)


def due_in(row, seconds, slack=5):
    delay = (row.run_at - now()).total_seconds()
    assert seconds - slack <= delay <= seconds + 0.5, delay
    return delay


def test_snooze_reschedules_without_spending_an_attempt():
    queued = cj.snoozing.enqueue("s")
    result = run_jobs()
    assert (result.snoozed, result.attempts, result.errors) == (1, 0, [])
    assert "1 snoozed" in str(result)
    row = one(queued)
    assert (row.attempts, row.snoozes, row.failed_at, row.locked_at) == (0, 1, None, None)
    assert row.last_error == "snoozed for 600 s: partner API rate limit"
    due_in(row, 600)
    run_jobs(include_scheduled=True, max_rounds=3)
    row.refresh_from_db()
    assert (row.attempts, row.snoozes) == (0, 4)


def test_snoozing_is_bounded_by_max_snoozes():
    queued = cj.snoozing.enqueue("s", seconds=5, reason="")
    with override_settings(JOBS={**TEST_JOBS, "MAX_SNOOZES": 2}):
        result = run_jobs(include_scheduled=True)
    assert (result.snoozed, result.failed) == (2, 1)
    row = one(queued)
    assert row.snoozes == 2 and row.failed_at is not None and row.run_at is None
    assert row.last_error == (
        'snoozed for 5 s; failed: snoozed 2 times already, the most JOBS["MAX_SNOOZES"] allows (2)'
    )


def test_retry_reschedules_with_its_delay_and_spends_an_attempt():
    queued = cj.retrying.enqueue("r")
    result = run_jobs()
    assert (result.retried, result.failed) == (1, 0)
    row = one(queued)
    assert row.attempts == 1 and row.failed_at is None
    assert row.last_error == "retry requested in 30 s: the export is not ready yet"
    due_in(row, 30)


def test_retry_on_the_last_attempt_fails():
    queued = cj.retrying.enqueue("r", seconds=1, reason="still not ready")
    result = run_jobs(include_scheduled=True)
    assert (result.retried, result.failed) == (2, 1)
    row = one(queued)
    assert row.attempts == 3 and row.failed_at is not None
    assert row.last_error == (
        "retry requested in 1 s: still not ready; failed: attempt 3 of 3 was the last"
    )


def test_retry_without_a_delay_uses_the_back_off():
    queued = cj.retrying_with_backoff.enqueue("r")
    run_jobs()
    row = one(queued)
    assert row.last_error == "retry requested: later, please"
    due_in(row, 1, slack=1.5)  # attempts ** 4 after the first attempt


def test_discard_fails_at_once_with_attempts_left():
    queued = cj.discarding.enqueue("d")
    result = run_jobs()
    assert result.failed == 1 and result.errors[0].final
    row = one(queued)
    assert row.attempts == 1 and row.failed_at is not None and row.run_at is None
    assert row.last_error == "discarded: customer deleted"
    assert row.error_summary == "discarded: customer deleted"


def test_retry_on_retries_only_the_listed_exceptions():
    retried = cj.retry_on_timeouts.enqueue("t")
    failed = cj.retry_on_timeouts.enqueue("v", error="value")
    result = run_jobs()
    assert (result.retried, result.failed) == (1, 1)
    assert one(retried).failed_at is None and one(retried).attempts == 1
    row = one(failed)
    assert row.failed_at is not None and row.attempts == 1
    assert "Traceback" in row.last_error
    assert row.error_summary == (
        "failed without retrying (TimeoutError only are retried): ValueError: value happened"
    )


def test_discard_on_discards_the_listed_exceptions_and_their_subclasses():
    discarded = cj.discard_on_lookups.enqueue("k")
    retried = cj.discard_on_lookups.enqueue("r", error="runtime")
    run_jobs()
    row = one(discarded)
    assert row.failed_at is not None and row.attempts == 1
    assert row.error_summary == "discarded: KeyError: 'lookup happened'"
    assert one(retried).failed_at is None and "RuntimeError" in one(retried).error_summary


@pytest.mark.parametrize(
    ("job_obj", "low", "high"),
    [
        (cj.failing_polynomial, 1, 1),
        (cj.failing_exponential, 8, 12),
        (cj.failing_fixed, 45, 45),
        (cj.failing_callable, 7, 7),
    ],
)
def test_each_back_off_sets_run_at(job_obj, low, high):
    queued = job_obj.enqueue("b")
    run_jobs()
    row = one(queued)
    delay = (row.run_at - now()).total_seconds()
    assert low - 2 <= delay <= high + 0.5, delay
    assert "back-off" not in row.last_error


@pytest.mark.parametrize(
    ("job_obj", "why"),
    [
        (cj.failing_broken_backoff, "ZeroDivisionError: no back-off today"),
        (cj.failing_negative_backoff, "ValueError: returned -5, not a number of seconds"),
    ],
)
def test_a_failing_back_off_is_recorded_and_the_default_applies(job_obj, why):
    queued = job_obj.enqueue("b")
    result = run_jobs()
    assert result.retried == 1
    row = one(queued)
    assert why in row.last_error.splitlines()[0]
    assert row.last_error.splitlines()[0].endswith("the default back-off applied (1 s)")
    # The job's own error stays the summary the admin lists.
    assert row.error_summary.startswith("RuntimeError: ")
    due_in(row, 1, slack=1.5)
    assert "RuntimeError" in row.last_error


def test_retry_snooze_discard_reach_the_worker_from_async_jobs():
    @job(name="tests.async_snooze")
    async def async_snooze():
        raise Snooze(timedelta(minutes=1), reason="async")

    queued = async_snooze.enqueue()
    assert run_jobs().snoozed == 1
    assert one(queued).last_error == "snoozed for 60 s: async"


# -- the policies ------------------------------------------------------------------------


def test_the_policies():
    assert [Polynomial()(n) for n in (1, 2, 3)] == [1, 16, 81]
    assert DEFAULT(2) == 16
    assert [Exponential(jitter=0)(n) for n in (1, 2, 3, 20)] == [1, 2, 4, 3600]
    assert Exponential(base=10, initial=1, cap=50, jitter=0)(10**6) == 50
    jittered = [Exponential(initial=100, cap=1000, jitter=0.5)(1) for _ in range(200)]
    assert 50 <= min(jittered) < max(jittered) <= 150
    assert all(Exponential(initial=100, cap=110, jitter=0.5)(1) <= 110 for _ in range(50))
    assert Fixed(30)(1) == Fixed(30)(9) == 30
    assert Fixed()(1) == 60


def test_names_resolve_to_the_policies_with_their_defaults():
    assert resolve("polynomial") == Polynomial()
    assert resolve("Exponential") == Exponential()
    assert resolve("fixed") == Fixed()
    assert resolve(None) is DEFAULT


@pytest.mark.parametrize(
    "make",
    [
        lambda: Exponential(base=0.5),
        lambda: Exponential(initial=0),
        lambda: Exponential(cap=-1),
        lambda: Exponential(jitter=1),
        lambda: Exponential(cap=math.nan),
        lambda: Fixed(-1),
        lambda: Fixed("10"),
    ],
)
def test_bad_policy_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_an_unknown_backoff_name_fails_at_decoration():
    with pytest.raises(ValueError, match="unknown backoff 'exponentail'.*'exponential'"):
        job(name="tests.typo", backoff="exponentail")(lambda: None)
    with pytest.raises(TypeError, match="backoff of job tests.number must be"):
        job(name="tests.number", backoff=10)(lambda: None)


def test_retry_on_and_discard_on_must_be_exception_classes():
    with pytest.raises(TypeError, match="retry_on must be exception classes"):
        job(name="tests.r", retry_on=("TimeoutError",))(lambda: None)
    with pytest.raises(TypeError, match="discard_on must be exception classes"):
        job(name="tests.d", discard_on=int)(lambda: None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, (5.0, "")),
        (timedelta(minutes=1), (60.0, "")),
        (lambda n: 1 / 0, None),
        (lambda n: "soon", None),
        (lambda n: math.nan, None),
    ],
)
def test_delay_for(value, expected):
    policy = value if callable(value) else (lambda n: value)
    delay, note = delay_for(policy, 2)
    if expected is None:
        assert delay == 16 and note.endswith("the default back-off applied (16 s)")
    else:
        assert (delay, note) == expected


def test_control_exceptions_check_their_arguments():
    assert str(Retry(in_=timedelta(seconds=90), reason="x")) == "retry requested in 90 s: x"
    assert str(Snooze(2.5)) == "snoozed for 2.5 s"
    assert str(Discard()) == "discarded"
    for bad in (-1, "10", None, math.nan, True):
        with pytest.raises(ValueError, match="Snooze"):
            Snooze(bad)
    with pytest.raises(ValueError, match="Retry"):
        Retry(in_=-3)
