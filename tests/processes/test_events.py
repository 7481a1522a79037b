"""Job events with real worker processes on every engine: a worker publishes progress,
the job's own events and its outcome; this process subscribes (the hub thread) and
receives each once, in order. Deadlines carry slack for a loaded 2-core machine.
"""

from __future__ import annotations

import time

import pytest

from django_jobs import cancel, events
from django_jobs.models import Job
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import group, live_workers

pytestmark = [pytest.mark.processes, pytest.mark.usefixtures("events_idle")]

KEEP = {"DELETE_SUCCESSFUL_JOBS": False}
SLACK = 30.0


def collect(subscription, until, timeout=SLACK):
    """Events of ``subscription`` until one satisfies ``until`` (inclusive)."""
    received = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = subscription.get_sync(timeout=0.5)
        if event is None:
            continue
        received.append(event.data)
        if until(event.data):
            return received
    raise AssertionError(f"no final event within {timeout} s; received {received}")


@pytest.mark.parametrize("keep", [False, True], ids=["deleted", "kept"])
def test_a_worker_publishes_progress_events_and_the_outcome_once(jobs_cmd, keep):
    options = KEEP if keep else {}
    jobs_cmd("jobs", "work", workers=[group(**options)], heartbeat=3)
    live_workers(1)
    job = process_jobs.reports_steps.using(wait=1).enqueue(steps=4)
    with events.subscribe(events.job_channel(job.pk)) as subscription:
        received = collect(subscription, lambda data: data.get("done"))
    progress = [d["progress"] for d in received if "progress" in d]
    assert progress == [25, 50, 75, 100]
    assert [d["step"] for d in received if "step" in d] == [1, 2, 3, 4]
    assert received[-1] == {"state": "succeeded", "job_id": job.pk, "done": True}
    assert [d for d in received if "state" in d] == [received[-1]]
    # Nothing more arrives: the outcome was published once.
    with events.subscribe("job:none") as other:
        assert other.get_sync(timeout=1) is None


def test_a_retry_then_the_final_failure_are_published(jobs_cmd):
    jobs_cmd("jobs", "work", workers=[group(MAX_ATTEMPTS=2)], heartbeat=3)
    live_workers(1)
    job = process_jobs.fails_with_events.using(wait=1).enqueue("f")
    with events.subscribe(events.job_channel(job.pk)) as subscription:
        first = collect(subscription, lambda data: data.get("state") == "retrying")
        # The retry is due after attempts**4 = 1 s.
        second = collect(subscription, lambda data: data.get("done"))
    assert first[-1]["attempt"] == 1 and "run_at" in first[-1]
    assert second == [{"state": "failed", "job_id": job.pk, "attempt": 2, "done": True}]


def test_cancelling_publishes_cancelled_once_waiting_or_running(jobs_cmd):
    waiting = process_jobs.waits_to_be_cancelled.using(wait=3600).enqueue()
    with events.subscribe(events.job_channel(waiting.pk)) as subscription:
        cancel(waiting.pk)
        received = collect(subscription, lambda data: data.get("done"))
    assert received == [{"state": "cancelled", "job_id": waiting.pk, "attempt": 0, "done": True}]

    jobs_cmd("jobs", "work", workers=[group()], heartbeat=3)
    running = process_jobs.waits_to_be_cancelled.enqueue()
    with events.subscribe(events.job_channel(running.pk)) as subscription:
        wait_until(lambda: Job.objects.get(pk=running.pk).status == "running", what="running")
        cancel(running.pk)
        received = collect(subscription, lambda data: data.get("done"))
        assert subscription.get_sync(timeout=1) is None
    assert received == [{"state": "cancelled", "job_id": running.pk, "attempt": 1, "done": True}]


def test_publish_from_anywhere_reaches_every_subscriber_of_its_channel(jobs_cmd):
    with events.subscribe("news") as one, events.subscribe("news", "other") as two:
        events.publish("news", {"n": 1})
        events.publish("other", {"n": 2})
        assert one.get_sync(timeout=SLACK).data == {"n": 1}
        assert [two.get_sync(timeout=SLACK).data for _ in range(2)] == [{"n": 1}, {"n": 2}]
        assert one.get_sync(timeout=0.5) is None
