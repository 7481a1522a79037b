"""Jobs with concurrency limits; each records its start and end in the Execution table."""

import os
import time

from django_jobs import job
from tests.testapp.models import Execution


def _customer(customer, n=0, sleep=0.0):
    return customer


@job(concurrency=1, concurrency_key=_customer, max_attempts=1)
def per_customer(customer, n=0, sleep=0.0):
    """At most one at a time per customer."""
    started = time.time()
    if sleep:
        time.sleep(sleep)
    Execution.objects.create(
        key=f"{customer}:{n}", pid=os.getpid(), started=started, ended=time.time()
    )


@job(concurrency=2, concurrency_key=_customer)
def two_per_customer(customer, n=0, sleep=0.0):
    started = time.time()
    if sleep:
        time.sleep(sleep)
    Execution.objects.create(
        key=f"two:{customer}:{n}", pid=os.getpid(), started=started, ended=time.time()
    )


@job(concurrency=1, max_attempts=2)
def one_at_a_time(key, seconds=0.0):
    """One key for every call: at most one runs at once anywhere."""
    Execution.objects.create(key=f"{key}:start", pid=os.getpid(), started=time.time())
    if seconds:
        time.sleep(seconds)
    Execution.objects.create(key=key, pid=os.getpid(), ended=time.time())
