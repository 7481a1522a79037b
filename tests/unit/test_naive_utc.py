"""USE_TZ = False: every time django_jobs writes is naive UTC, so liveness never depends on
TIME_ZONE or its DST jumps.

Heartbeats are written by one process and judged by another. Compared in local time, a DST
jump (Europe/Paris, 2026-10-25 03:00 → 02:00) shifts "now" by an hour against what was
written before it; a zone east of UTC makes a fresh heartbeat look an hour or more stale
and one west of UTC makes a dead worker look alive. The tests run in zones on both sides:
any local time in the arithmetic fails one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.test import override_settings

from django_jobs import clock, later
from django_jobs.conf import jobs_settings
from django_jobs.models import Job
from django_jobs.models import Worker as WorkerRow
from django_jobs.runtime import lifeline
from django_jobs.runtime.worker import Worker
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

ZONES = ["Europe/Paris", "America/New_York", "Asia/Kolkata"]


def utc_wall() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def assert_utc(value: datetime | None, what: str) -> None:
    assert value is not None and value.tzinfo is None, (what, value)
    assert abs(value - utc_wall()) < timedelta(minutes=1), (what, value, utc_wall())


@pytest.mark.parametrize("zone", ZONES)
def test_the_clock_is_utc_wall_time_whatever_time_zone(zone):
    with override_settings(USE_TZ=False, TIME_ZONE=zone):
        now = clock.now()
        local = datetime.now()  # Django set the process's TZ to TIME_ZONE
    assert_utc(now, "clock.now()")
    # The zone really applied (else this test could not tell UTC from local time).
    assert abs(local - now) >= timedelta(minutes=30), (local, now)


def held_job(owner: str, since: datetime) -> int:
    """A job that ``owner`` claimed and started at ``since``."""
    job = later(jobs.record, [owner])
    Job.objects.filter(pk=job.pk).update(
        locked_at=since, locked_by=owner, claim_token=1, started_at=since, attempts=1
    )
    return job.pk


@pytest.mark.parametrize("zone", ZONES)
def test_a_fresh_heartbeat_is_alive_and_a_stale_one_dead_in_any_zone(zone):
    timeout = timedelta(seconds=jobs_settings().heartbeat_timeout)
    with override_settings(USE_TZ=False, TIME_ZONE=zone):
        now = clock.now()
        for identity, beat in [("alive", now - timedelta(seconds=10)), ("dead", now - 2 * timeout)]:
            WorkerRow.objects.create(
                identity=identity, host="h", pid=1, started_at=beat, heartbeat_at=beat
            )
        # Both held for longer than the heartbeat timeout: only the heartbeat decides.
        alive, dead = held_job("alive", now - 2 * timeout), held_job("dead", now - 2 * timeout)
        recovered = lifeline.recover()
        rows = {job.pk: job for job in Job.objects.all()}
        workers = set(WorkerRow.objects.values_list("identity", flat=True))
    assert recovered == 1
    assert rows[alive].locked_by == "alive"  # a live worker's job is never taken
    assert rows[dead].locked_by is None and "worker dead died" in rows[dead].last_error
    assert workers == {"alive"}


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_workoff_runs_jobs_and_leaves_utc_timestamps(zone):
    group = {**settings.JOBS["WORKERS"][0], "DELETE_SUCCESSFUL_JOBS": False}
    with override_settings(
        USE_TZ=False, TIME_ZONE=zone, JOBS={**settings.JOBS, "WORKERS": [group]}
    ):
        now_job = later(jobs.record, ["now"])
        later_job = later(jobs.record, ["in an hour"], wait=3600)
        # The status querysets compare with the same clock as the worker.
        assert list(Job.objects.ready().values_list("pk", flat=True)) == [now_job.pk]
        assert list(Job.objects.later().values_list("pk", flat=True)) == [later_job.pk]
        Worker(jobs_settings().workers[0], "tz", workoff=True).run()
        ran, waiting = Job.objects.get(pk=now_job.pk), Job.objects.get(pk=later_job.pk)
    assert list(Execution.objects.values_list("key", flat=True)) == ["now"]
    for what in ("created_at", "updated_at", "run_at", "started_at", "finished_at"):
        assert_utc(getattr(ran, what), what)
    assert ran.locked_at is None and ran.attempts == 1
    assert waiting.finished_at is None and waiting.attempts == 0
    assert abs(waiting.run_at - utc_wall() - timedelta(hours=1)) < timedelta(minutes=1)
