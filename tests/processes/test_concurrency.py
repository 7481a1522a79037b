"""Several real worker processes over one table: every job performed exactly once."""

import signal

import pytest
from django.db import connection
from django.db.models import Count

from django_jobs import later_many
from django_jobs.models import Job
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

JOBS = 2000


def test_workers_perform_every_job_exactly_once(processes):
    count = 2 if connection.vendor == "sqlite" else 4
    later_many(jobs.record, [[f"k{i}"] for i in range(JOBS)])
    workers = [processes("jobs", "worker", "--index", "0", "--id", str(i)) for i in range(count)]
    wait_until(lambda: not Job.objects.exists(), timeout=120, what="the queue to drain")
    assert Execution.objects.count() == JOBS
    twice = Execution.objects.values("key").annotate(n=Count("id")).filter(n__gt=1)
    assert list(twice) == []
    # Every process took a share: the claim spreads work rather than serialising it.
    pids = set(Execution.objects.values_list("pid", flat=True))
    assert len(pids) >= 2
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in workers] == [0] * count
