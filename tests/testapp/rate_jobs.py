"""Jobs with rate limits; each records when it started in the Execution table."""

import os
import time

from django_jobs import job
from tests.testapp.models import Execution


@job(rate_limit="20/s", max_attempts=1)
def paced(n):
    """At most 20 start per second, across every worker."""
    Execution.objects.create(key=f"paced:{n}", pid=os.getpid(), started=time.time())


def _account(account, n=0):
    return account


@job(rate_limit="5/s", rate_key=_account, max_attempts=1)
def per_account(account, n=0):
    """At most 5 start per second for each account."""
    Execution.objects.create(key=f"{account}:{n}", pid=os.getpid(), started=time.time())


@job(queue="email", max_attempts=1)
def mailed(n):
    """No limit of its own: the queue's RATE_LIMIT applies (set by the test)."""
    Execution.objects.create(key=f"mailed:{n}", pid=os.getpid(), started=time.time())
