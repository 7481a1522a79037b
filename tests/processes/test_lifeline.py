"""The lifeline pass itself, against the real database: who is dead, what becomes of jobs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import later
from django_jobs.conf import jobs_settings
from django_jobs.models import Job, Worker
from django_jobs.runtime.lifeline import recover
from django_jobs.storage.rows import new_token
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def locked(
    job_def, by: str, seconds_ago: float, attempts: int = 1, started: bool = True,
    expires_in: float | None = None,
) -> Job:  # fmt: skip
    """A row as a claim leaves it (token), started ``seconds_ago`` unless ``started=False``."""
    row = later(job_def)
    at = timezone.now() - timedelta(seconds=seconds_ago)
    Job.objects.filter(pk=row.pk).update(
        locked_by=by, locked_at=at, attempts=attempts, claim_token=new_token(),
        started_at=at if started else None,
        expires_at=None if expires_in is None else timezone.now() + timedelta(seconds=expires_in),
    )  # fmt: skip
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
    assert recover() == 1
    job.refresh_from_db()
    assert job.last_error == "worker ghost@elsewhere died while running this job"
    assert (job.locked_by, job.locked_at, job.attempts, job.failed_at) == (None, None, 1, None)
    assert job.run_at > timezone.now()  # retried with back-off
    assert not Worker.objects.exists()  # the dead worker's row is gone


def test_a_recovered_job_whose_attempts_are_spent_fails():
    job = locked(jobs.fail_for_good, "gone@elsewhere", seconds_ago=3600)  # max_attempts=1
    assert recover() == 1
    job.refresh_from_db()
    assert job.failed_at is not None and job.run_at is None
    assert job.last_error == "worker gone@elsewhere died while running this job"


def test_jobs_of_live_workers_and_recent_claims_are_left_alone():
    timeout = jobs_settings().heartbeat_timeout
    worker("alive@elsewhere", beat_seconds_ago=1)
    busy = locked(jobs.noop, "alive@elsewhere", seconds_ago=timeout * 3)
    # A claim younger than the timeout: its worker may not have beaten yet.
    fresh = locked(jobs.noop, "starting@elsewhere", seconds_ago=1)
    assert recover() == 0
    for job in (busy, fresh):
        job.refresh_from_db()
        assert job.locked_by is not None and job.last_error == ""


def test_a_live_workers_job_is_never_taken_for_max_runtime_only_past_its_own_deadline():
    timeout = jobs_settings().heartbeat_timeout
    worker("busy@elsewhere", beat_seconds_ago=1)
    # Running for 5 hours (longer than any MAX_RUNTIME here), its deadline still ahead.
    long = locked(jobs.noop, "busy@elsewhere", seconds_ago=5 * 3600, expires_in=60)
    # Its deadline passed, but not by the grace (one heartbeat timeout) yet.
    late = locked(jobs.noop, "busy@elsewhere", seconds_ago=100, expires_in=-timeout / 2)
    # Past its deadline plus the grace: its worker failed to stop it.
    stuck = locked(jobs.noop, "busy@elsewhere", seconds_ago=100, expires_in=-timeout - 5)
    assert recover() == 1
    for job in (long, late):
        job.refresh_from_db()
        assert job.locked_by == "busy@elsewhere" and job.last_error == ""
    stuck.refresh_from_db()
    assert stuck.locked_by is None and stuck.attempts == 1
    assert stuck.last_error.startswith("JobTimeout: still running past its deadline")


def test_jobs_a_dead_worker_held_but_never_started_are_given_back_unspent():
    started = locked(jobs.noop, "gone@elsewhere", seconds_ago=3600, attempts=1)
    waiting = [
        locked(jobs.noop, "gone@elsewhere", seconds_ago=3600, attempts=1, started=False)
        for _ in range(3)
    ]
    before = timezone.now()
    assert recover() == 4
    for job in waiting:
        job.refresh_from_db()
        assert (job.locked_by, job.claim_token, job.attempts, job.last_error) == (None, None, 0, "")
        assert job.run_at <= before  # at once, no back-off
    started.refresh_from_db()
    assert started.attempts == 1 and "died while running this job" in started.last_error
    assert started.run_at > before


def test_two_lifelines_recover_a_job_once():
    job = locked(jobs.noop, "gone@elsewhere", seconds_ago=3600)
    assert recover() + recover() == 1
    job.refresh_from_db()
    assert job.attempts == 1
