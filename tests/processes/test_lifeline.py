"""The lifeline pass itself, against the real database: who is dead, what becomes of jobs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import later
from django_jobs.conf import WorkerGroup, jobs_settings
from django_jobs.models import Job, Worker
from django_jobs.runtime.lifeline import recover
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_QUEUE = WorkerGroup(index=0, queues=None, max_attempts=3, max_runtime=600)


def locked(job_def, by: str, seconds_ago: float, attempts: int = 1) -> Job:
    row = later(job_def)
    Job.objects.filter(pk=row.pk).update(
        locked_by=by, locked_at=timezone.now() - timedelta(seconds=seconds_ago), attempts=attempts
    )
    return row


def worker(identity: str, beat_seconds_ago: float) -> Worker:
    return Worker.objects.create(
        identity=identity, host="elsewhere", pid=1,
        heartbeat_at=timezone.now() - timedelta(seconds=beat_seconds_ago),
    )  # fmt: skip


def test_a_job_of_a_worker_with_a_stale_heartbeat_is_an_errored_attempt():
    timeout = jobs_settings().heartbeat_timeout
    worker("ghost@elsewhere", beat_seconds_ago=timeout + 5)
    job = locked(jobs.noop, "ghost@elsewhere", seconds_ago=timeout + 10)
    assert recover(EVERY_QUEUE) == 1
    job.refresh_from_db()
    assert job.last_error == "worker ghost@elsewhere died while running this job"
    assert (job.locked_by, job.locked_at, job.attempts, job.failed_at) == (None, None, 1, None)
    assert job.run_at > timezone.now()  # retried with back-off
    assert not Worker.objects.exists()  # the dead worker's row is gone


def test_a_recovered_job_whose_attempts_are_spent_fails():
    job = locked(jobs.fail_for_good, "gone@elsewhere", seconds_ago=3600)  # max_attempts=1
    assert recover(EVERY_QUEUE) == 1
    job.refresh_from_db()
    assert job.failed_at is not None and job.run_at is None
    assert job.last_error == "worker gone@elsewhere died while running this job"


def test_jobs_of_live_workers_and_recent_claims_are_left_alone():
    timeout = jobs_settings().heartbeat_timeout
    worker("alive@elsewhere", beat_seconds_ago=1)
    busy = locked(jobs.noop, "alive@elsewhere", seconds_ago=timeout * 3)
    # A claim younger than the timeout: its worker may not have beaten yet.
    fresh = locked(jobs.noop, "starting@elsewhere", seconds_ago=1)
    assert recover(EVERY_QUEUE) == 0
    for job in (busy, fresh):
        job.refresh_from_db()
        assert job.locked_by is not None and job.last_error == ""


def test_a_job_locked_longer_than_max_runtime_is_recovered_even_from_a_live_worker():
    worker("stuck@elsewhere", beat_seconds_ago=1)
    job = locked(jobs.noop, "stuck@elsewhere", seconds_ago=EVERY_QUEUE.max_runtime + 1)
    assert recover(EVERY_QUEUE) == 1
    job.refresh_from_db()
    assert job.locked_by is None
    assert job.last_error.startswith("JobTimeout: locked by stuck@elsewhere for longer than")


def test_two_lifelines_recover_a_job_once():
    job = locked(jobs.noop, "gone@elsewhere", seconds_ago=3600)
    assert recover(EVERY_QUEUE) + recover(EVERY_QUEUE) == 1
    job.refresh_from_db()
    assert job.attempts == 1
