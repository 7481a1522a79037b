"""Riding out a database outage: the back-off, the wake-up pipe, and a long outage end to end."""

import math
import os
import time

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import override_settings

from django_jobs import later_many
from django_jobs.conf import jobs_settings
from django_jobs.models import Job
from django_jobs.runtime import resilience
from django_jobs.runtime.resilience import MAX_DB_BACKOFF, DatabaseRetry, backoff_delay
from django_jobs.runtime.worker import Worker
from django_jobs.storage import get_storage
from tests.testapp import jobs
from tests.testapp.models import Execution


@pytest.mark.parametrize("failures", [0, 1, 16, 17, 1023, 1024, 1100, 10**6, 10**18])
def test_the_backoff_is_capped_before_it_is_computed(failures):
    # 0.25 * 2**failures overflowed a float from failure 1024 on (about 2.8 h of outage).
    delays = [backoff_delay(failures) for _ in range(50)]
    assert all(math.isfinite(d) and 0 < d <= MAX_DB_BACKOFF for d in delays)


def test_the_backoff_is_jittered_within_the_upper_half_of_its_ceiling():
    delays = [backoff_delay(10**6) for _ in range(200)]
    assert min(delays) >= MAX_DB_BACKOFF / 2
    # Workers that lost the database together must not all come back at the same instant.
    assert len({round(d, 6) for d in delays}) > 100
    assert max(backoff_delay(1, base=0.1) for _ in range(50)) <= 0.2


def test_a_pending_wake_up_does_not_turn_the_backoff_into_a_busy_loop():
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    try:
        retry = DatabaseRetry("test", wake_r, lambda: False)
        retry.base = 0.02
        os.write(wake_w, b"x")  # a wake-up (say, a finished job) arrived before the outage
        calls = []

        def down():
            calls.append(time.monotonic())
            raise OperationalError("the database is gone")

        started = time.monotonic()
        assert retry.run(down, attempts=6) is None
        elapsed = time.monotonic() - started
        # The byte cuts the first wait short and is drained; waits 2 to 5 are each at
        # least half their ceiling (jitter). Undrained, every wait returned at once.
        floor = sum(min(MAX_DB_BACKOFF, retry.base * 2**f) / 2 for f in range(2, 6))
        assert len(calls) == 6
        assert elapsed >= floor, f"{elapsed:.3f}s for 6 attempts; at least {floor:.3f}s expected"
        assert all(b - a >= 0.01 for a, b in zip(calls[1:], calls[2:], strict=False))
        with pytest.raises(BlockingIOError):
            os.read(wake_r, 1)  # drained
    finally:
        os.close(wake_r)
        os.close(wake_w)


def test_a_wake_up_during_the_backoff_still_cuts_it_short():
    """Draining must not cost the stop signal: a byte written mid-wait ends that wait."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    try:
        retry = DatabaseRetry("test", wake_r, lambda: False)
        retry.base = MAX_DB_BACKOFF  # every wait at least 5 s unless woken
        os.write(wake_w, b"x")
        started = time.monotonic()
        assert retry.run(_always_down, attempts=2) is None
        assert time.monotonic() - started < 1.0
    finally:
        os.close(wake_r)
        os.close(wake_w)


def _always_down():
    raise OperationalError("the database is gone")


#: Reconnect attempts of the simulated outage: past the 1,024 at which the old back-off
#: overflowed.
OUTAGE = 1100


@pytest.mark.django_db(transaction=True)
def test_a_worker_survives_a_long_outage_and_writes_its_buffered_outcomes_afterwards(
    monkeypatch,
):
    later_many(jobs.record, [[f"through-{n}", 0.1] for n in range(3)])
    storage = get_storage()
    real_record = storage.record
    # The back-off's failure counts, in order: one per reconnect attempt of the main
    # thread (the flusher thread retries on its own ticks, without back-off).
    failures: list[int] = []
    real_delay = resilience.backoff_delay

    def delay(count, base):
        failures.append(count)
        return real_delay(count, base)

    def record(outcomes, now, **options):
        # The database is real; only the outcome writes find it gone, until the worker
        # has backed off OUTAGE times.
        if len(failures) < OUTAGE:
            raise OperationalError("simulated outage: server closed the connection")
        return real_record(outcomes, now, **options)

    monkeypatch.setattr(resilience, "backoff_delay", delay)
    monkeypatch.setattr(storage, "record", record)
    group = {"THREADS": 3, "DELETE_SUCCESSFUL_JOBS": False}
    workers = [{**settings.JOBS["WORKERS"][0], **group}]
    with override_settings(JOBS={**settings.JOBS, "WORKERS": workers}):
        worker = Worker(jobs_settings().workers[0], "outage", workoff=True)
        # The exponent stops at 16: the longest wait is base * 2**16, 0.65 ms here.
        worker.db.base = 1e-8
        started = time.monotonic()
        assert worker.run() == 0  # no OverflowError, no crash
    took = time.monotonic() - started
    # One unbroken outage of OUTAGE reconnect attempts in a row.
    assert failures[:OUTAGE] == list(range(1, OUTAGE + 1))
    # Each job ran once, and its outcome, buffered through the outage, reached the table.
    assert sorted(Execution.objects.values_list("key", flat=True)) == [
        f"through-{n}" for n in range(3)
    ]
    assert Job.objects.succeeded().count() == 3
    assert not Job.objects.filter(locked_at__isnull=False).exists()
    assert set(Job.objects.values_list("attempts", flat=True)) == {1}
    assert took < 30
