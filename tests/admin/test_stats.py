from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import stats
from django_jobs.models import Job, Worker

from .helpers import make_job

pytestmark = pytest.mark.django_db


def by_queue(rows):
    return {row.queue: row for row in rows}


def test_queue_stats_counts_each_state_per_queue(settings):
    settings.JOBS = {**settings.JOBS, "WORKERS": [{"DELETE_SUCCESSFUL_JOBS": False}]}
    now = timezone.now()
    make_job("ready", run_at=now - timedelta(minutes=10))
    make_job("ready", run_at=now - timedelta(minutes=2))
    make_job("later")
    make_job("running")
    make_job("failed", queue="email")
    make_job("succeeded", queue="email")
    make_job("succeeded", queue="email", finished_at=now - timedelta(hours=2))
    make_job("ready", queue="unknown", run_at=now)

    rows = stats.queue_stats(now=now)
    assert [r.queue for r in rows] == ["default", "email", "slow", "unknown"]
    queues = by_queue(rows)
    default = queues["default"]
    assert (default.ready, default.later, default.running, default.failed) == (2, 1, 1, 0)
    assert timedelta(minutes=9) < default.oldest_ready_age <= timedelta(minutes=10)
    email = queues["email"]
    assert (email.ready, email.failed, email.succeeded_last_hour) == (0, 1, 1)
    assert email.oldest_ready_age is None
    assert queues["slow"] == stats.QueueStats("slow", succeeded_last_hour=0)
    assert not queues["unknown"].configured and queues["unknown"].ready == 1


def test_succeeded_is_none_when_the_group_deletes_successful_jobs(settings):
    settings.JOBS = {**settings.JOBS, "WORKERS": [{"DELETE_SUCCESSFUL_JOBS": True}]}
    make_job("ready")
    row = by_queue(stats.queue_stats())["default"]
    assert row.succeeded_last_hour is None and not row.succeeded_kept


def test_live_workers_lists_fresh_workers_with_their_jobs():
    now = timezone.now()
    Worker.objects.create(identity="w1@h", host="h", pid=11, heartbeat_at=now)
    Worker.objects.create(
        identity="dead@h", host="h", pid=12, heartbeat_at=now - timedelta(hours=1)
    )
    job = make_job("running", locked_by="w1@h", locked_at=now - timedelta(seconds=30))
    make_job("running", locked_by="dead@h")
    (worker,) = stats.live_workers(now=now)
    assert (worker.identity, worker.pid) == ("w1@h", 11)
    (running,) = worker.jobs
    assert running.id == job.pk
    assert running.running_for == timedelta(seconds=30)


def test_hourly_outcomes_buckets_by_hour():
    now = timezone.now()
    make_job("succeeded", finished_at=now)
    make_job("succeeded", finished_at=now - timedelta(hours=3))
    make_job("failed", failed_at=now)
    make_job("failed", failed_at=now - timedelta(hours=30))
    result = stats.hourly_outcomes(now=now)
    assert len(result.starts) == 24
    assert sum(result.succeeded) == 2 and result.succeeded[-1] == 1
    assert result.failed == [0] * 23 + [1]
    assert Job.objects.count() == 4


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Traceback...\n  File x\nValueError: boom\n", "ValueError"),
        ("tests.app.MyError: x", "tests.app.MyError"),
        ("KeyboardInterrupt", "KeyboardInterrupt"),
        ("worker w@h died while running this job", ""),
        ("", ""),
    ],
)
def test_error_type(text, expected):
    assert stats.error_type(text) == expected
