"""A worker starts a claimed job only while its heartbeats vouch that the claim is still
its own: none that waited through a gap in the beats long enough for another worker to
have recovered it (a host cut off from the database, a frozen process)."""

import time

import pytest
from django.test import override_settings

from django_jobs.conf import jobs_settings
from django_jobs.runtime.heartbeat import HeartbeatThread
from django_jobs.runtime.worker import Worker
from tests.settings import JOBS as TEST_JOBS


@pytest.fixture
def heartbeat():
    with override_settings(JOBS={**TEST_JOBS, "HEARTBEAT_TIMEOUT": 2}):
        yield HeartbeatThread("w", jobs_settings().workers[0], lambda: 0)


def test_claims_since_the_last_gap_are_vouched_for_while_beats_are_fresh(heartbeat):
    assert heartbeat.trust == 1.0
    claimed = time.monotonic()
    assert heartbeat.vouches_for(claimed)
    heartbeat._beaten()  # a beat without a gap keeps every claim since registration
    assert heartbeat.vouches_for(claimed)


def test_a_stale_heartbeat_vouches_for_nothing(heartbeat):
    claimed = time.monotonic()
    heartbeat.last_beat -= 1.5  # no beat for longer than half the timeout
    assert not heartbeat.vouches_for(claimed)


def test_claims_made_before_a_gap_are_never_started_after_it(heartbeat):
    before = time.monotonic()
    heartbeat.last_beat -= 1.5
    heartbeat._beaten()  # the database is reachable again
    after = time.monotonic()
    assert not heartbeat.vouches_for(before)  # may have been recovered meanwhile
    assert heartbeat.vouches_for(after)


@pytest.mark.django_db
def test_the_worker_does_not_start_a_job_its_heartbeat_does_not_vouch_for():
    from django_jobs.executor import Call
    from django_jobs.storage.rows import ClaimedJob

    worker = Worker(jobs_settings().workers[0], "trust")
    job = ClaimedJob(1, "tests.testapp.jobs.record", ["k"], {}, "default", 50, 1, None)
    call = Call(job, worker._context)
    call.claimed_at = time.monotonic()
    assert worker._may_start(call)
    worker.heartbeat.trusted_since = call.claimed_at + 1
    assert not worker._may_start(call) and not worker._has_slot(call)
