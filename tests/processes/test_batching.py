"""Batched claims: no hoarding, priority order kept, thread and async limits respected."""

import json

import pytest
from django.utils import timezone

from django_jobs import later, later_many
from django_jobs.models import Job
from django_jobs.storage import get_storage
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes


def max_overlap(rows) -> int:
    """The largest number of executions running at one instant."""
    events = sorted([(r.started, 1) for r in rows] + [(r.ended, -1) for r in rows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def start_workers(processes, count, **group):
    groups = json.dumps([{"QUEUE": "*", "SLEEP_DELAY": 0.2, **group}])
    return [
        processes("jobs", "worker", "--id", str(i), env={"DJANGO_JOBS_WORKERS": groups})
        for i in range(count)
    ]


def test_slow_jobs_are_not_hoarded_by_one_worker(processes):
    for i in range(4):
        later(jobs.record, [f"slow{i}"], {"sleep": 0.6})
    start_workers(processes, 2)
    wait_until(lambda: Execution.objects.count() == 4, timeout=30)
    rows = list(Execution.objects.all())
    assert len({r.pid for r in rows}) == 2, "both workers must have run jobs"
    assert max_overlap(rows) == 2


def test_thread_pool_runs_at_most_threads_jobs_at_once(processes):
    for i in range(9):
        later(jobs.record, [f"t{i}"], {"sleep": 0.3})
    start_workers(processes, 1, THREADS=3)
    wait_until(lambda: Execution.objects.count() == 9, timeout=30)
    assert max_overlap(list(Execution.objects.all())) == 3


def test_async_jobs_run_concurrently_up_to_the_limit(processes):
    for i in range(12):
        later(jobs.async_record, [f"a{i}"], {"sleep": 0.3})
    start_workers(processes, 1, ASYNC_CONCURRENCY=4)
    wait_until(lambda: Execution.objects.count() == 12, timeout=30)
    assert max_overlap(list(Execution.objects.all())) == 4


def test_batches_keep_priority_order_across_claims(transactional_db):
    later_many(jobs.record, [[f"p{i}"] for i in range(30)], priority=70)
    later_many(jobs.record, [[f"h{i}"] for i in range(30)], priority=10)
    storage = get_storage()
    seen = []
    while batch := storage.claim("w", None, 7, timezone.now()):
        seen += [(c.priority, c.id) for c in batch]
    assert seen == sorted(seen) and len(seen) == 60
    assert Job.objects.running().count() == 60
