"""Jobs for the unique-job and retry-policy tests; each records its runs in Execution."""

import os
from datetime import timedelta

from django_jobs import Discard, Retry, Snooze, job
from django_jobs.backoff import Exponential, Fixed
from tests.testapp.models import Execution


def _ran(key):
    Execution.objects.create(key=key, pid=os.getpid())


@job(unique=True)
def unique_record(key, note=""):
    _ran(key)


@job(unique=True, unique_for=timedelta(minutes=10))
def unique_for_ten_minutes(key):
    _ran(key)


@job(unique_key=lambda order_id, note="": order_id)
def keyed_by_order(order_id, note=""):
    _ran(f"order:{order_id}:{note}")


@job(unique=True, unique_states=["ready", "scheduled", "running", "succeeded", "failed"])
def unique_while_kept(key, fail=False):
    _ran(key)
    if fail:
        raise ValueError("failing on purpose")


@job(unique=True, max_attempts=3)
def unique_failing(key):
    _ran(key)
    raise ValueError("boom")


@job
def snoozing(key, seconds=600, reason="partner API rate limit"):
    _ran(key)
    raise Snooze(seconds, reason=reason)


@job(max_attempts=3)
def retrying(key, seconds=30, reason="the export is not ready yet"):
    _ran(key)
    raise Retry(in_=seconds, reason=reason)


@job(max_attempts=3)
def retrying_with_backoff(key):
    _ran(key)
    raise Retry(reason="later, please")


@job
def discarding(key, reason="customer deleted"):
    _ran(key)
    raise Discard(reason)


@job(retry_on=(TimeoutError,), max_attempts=5)
def retry_on_timeouts(key, error="timeout"):
    _ran(key)
    raise (TimeoutError if error == "timeout" else ValueError)(f"{error} happened")


@job(discard_on=LookupError, max_attempts=5)
def discard_on_lookups(key, error="lookup"):
    _ran(key)
    raise (KeyError if error == "lookup" else RuntimeError)(f"{error} happened")


@job(backoff="polynomial", max_attempts=5)
def failing_polynomial(key):
    _ran(key)
    raise RuntimeError("polynomial")


@job(backoff=Exponential(base=3, initial=10, cap=60, jitter=0.2), max_attempts=5)
def failing_exponential(key):
    _ran(key)
    raise RuntimeError("exponential")


@job(backoff=Fixed(45), max_attempts=5)
def failing_fixed(key):
    _ran(key)
    raise RuntimeError("fixed")


@job(backoff=lambda attempt: timedelta(seconds=7 * attempt), max_attempts=5)
def failing_callable(key):
    _ran(key)
    raise RuntimeError("callable")


def _broken_backoff(attempt):
    raise ZeroDivisionError("no back-off today")


@job(backoff=_broken_backoff, max_attempts=5)
def failing_broken_backoff(key):
    _ran(key)
    raise RuntimeError("broken backoff")


@job(backoff=lambda attempt: -5, max_attempts=5)
def failing_negative_backoff(key):
    _ran(key)
    raise RuntimeError("negative backoff")
