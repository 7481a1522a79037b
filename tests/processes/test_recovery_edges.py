"""Exact recovery at its edges, with real processes: a watchdog facing a job's own locks,
a job allowed longer than its group's MAX_RUNTIME, and ``jobs workoff`` after a crash."""

import os
import signal
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from django_jobs import later, later_many
from django_jobs.models import Job, Worker
from django_jobs.runtime.watchdog import CHECK_EVERY, RECORD_WITHIN
from django_jobs.storage import get_storage
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import gone, group, live_workers
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

KEEP = {"DELETE_SUCCESSFUL_JOBS": False}  # rows stay, to read attempts and last_error
#: HEARTBEAT_TIMEOUT of these tests, in seconds.
T = 2
#: progress_in_atomic's @job(timeout=...).
TIMEOUT = 2
#: Beyond the watchdog's own bounds: process exit, the supervisor's reaping, our polling.
SLACK = 1.0


def row_of(job) -> Job:
    job.refresh_from_db()
    return job


def killed_in_time(key: str) -> tuple[Execution, float]:
    """The job's start, and how long after it its process was gone."""
    start = wait_until(
        lambda: Execution.objects.filter(key=f"{key}:start").first(), what=f"{key} to start"
    )
    wait_until(
        lambda: gone([start.pid]), timeout=TIMEOUT + RECORD_WITHIN + 10,
        what="the timed-out worker to end",
    )  # fmt: skip
    return start, time.time() - start.started


def replaced(dead_pid: int, key: str) -> None:
    """A fresh process took the slot and runs the next job."""
    later(jobs.record, [f"{key}:next"])
    wait_until(
        lambda: Execution.objects.filter(key=f"{key}:next").exists(), timeout=15,
        what="a job enqueued after the kill to run",
    )  # fmt: skip
    assert Execution.objects.get(key=f"{key}:next").pid != dead_pid
    [new_pid] = live_workers(1).values()
    assert new_pid != dead_pid


@pytest.mark.parametrize("lock_row", [False, True], ids=["progress", "row-locked"])
def test_a_job_past_its_timeout_inside_its_own_transaction_is_killed_in_time(jobs_cmd, lock_row):
    """``atomic(); context.progress(); [select_for_update() of its own row;] sleep()``.

    Progress has a connection of its own: the job alone holds no lock the watchdog needs
    (PostgreSQL, MariaDB), and the watchdog records the timeout. When the job's
    transaction holds its own row (or, on SQLite, the database's write lock, which every
    worker transaction takes up front), the watchdog's write gives up after its bounded
    wait, the process ends all the same, and recovery charges the attempt.
    """
    sqlite = connection.vendor == "sqlite"
    if sqlite and lock_row:
        pytest.skip("on SQLite the plain case already holds the write lock")
    held = lock_row or sqlite
    key = "locked" if lock_row else "atomic"
    job = later(process_jobs.progress_in_atomic, [key], {"lock_row": lock_row})
    jobs_cmd("jobs", "work", workers=[group(**KEEP)], heartbeat=T)
    start, died_after = killed_in_time(key)
    print(f"[{connection.vendor} {key}] gone {died_after:.2f} s after its start (timeout 2 s)")
    wait_until(lambda: row_of(job).failed_at is not None, timeout=2 * T, what="the record")
    if held:
        assert died_after <= TIMEOUT + CHECK_EVERY + RECORD_WITHIN + SLACK
        assert job.last_error.startswith("worker django-jobs-worker.")
        # Ended by its watchdog (exit code 75), or first by the supervisor when the held
        # lock also kept the heartbeat from being written (SQLite).
        assert "died while running this job (" in job.last_error
    else:
        assert died_after <= TIMEOUT + CHECK_EVERY + SLACK
        assert job.last_error == f"JobTimeout: timed out after {TIMEOUT} s"
        # Written on its own connection: kept although the job's transaction rolled back.
        assert (job.progress, job.progress_message) == (10, "inside the transaction")
    # max_attempts=1: failed for good, never run again.
    assert (job.attempts, job.locked_by, job.claim_token) == (1, None, None)
    assert Execution.objects.filter(key=f"{key}:start").count() == 1
    replaced(start.pid, key)


def test_a_jobs_own_timeout_longer_than_max_runtime_is_honoured(jobs_cmd):
    """@job(timeout=30) running 8 s under MAX_RUNTIME=3, two workers whose lifelines run
    every second: it runs once, on one worker, and succeeds."""
    job = later(process_jobs.outlives_max_runtime, ["long"], {"seconds": 8})
    jobs_cmd("jobs", "work", workers=[group(2, MAX_RUNTIME=3, **KEEP)], heartbeat=T)
    pids = live_workers(2)
    wait_until(lambda: row_of(job).finished_at is not None, timeout=25, what="the job to succeed")
    assert Execution.objects.filter(key="long:start").count() == 1
    assert Execution.objects.filter(key="long").count() == 1
    assert (job.attempts, job.last_error, job.failed_at) == (1, "", None)
    # Neither worker was stopped by its watchdog at MAX_RUNTIME: the same two processes.
    assert live_workers(2) == pids


def test_workoff_after_a_crash_runs_the_unstarted_jobs_now_and_the_started_one_later(jobs_cmd):
    crashed = later(jobs.slow, ["crashed"], {"seconds": 60})
    # Its second attempt: once charged, it backs off 2**4 = 16 s, longer than any workoff
    # run here could take (after a first attempt, 1 s might not be).
    Job.objects.filter(pk=crashed.pk).update(attempts=1)
    worker = jobs_cmd("jobs", "worker", "--index", "0", "--id", "1", workers=[group()], heartbeat=T)
    # Its start is written before it runs (the first job of its name in the process).
    wait_until(
        lambda: Execution.objects.filter(key="crashed:start").exists(), what="the long job to run"
    )
    assert row_of(crashed).started_at is not None
    [identity] = live_workers(1)
    # It runs the long job in its main thread (THREADS=1): it claims nothing else now.
    # Claimed in its name, the short jobs stand for a prefetched batch it had not started.
    waiting = later_many(jobs.record, [[f"waiting-{n}"] for n in range(3)])
    held = get_storage().claim(identity, None, 3, timezone.now())
    assert sorted(h.id for h in held) == sorted(w.pk for w in waiting)
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait(10) == -signal.SIGKILL

    def all_stale():
        cutoff = timezone.now() - timedelta(seconds=T)
        newest_lock = Job.objects.aggregate(at=Max("locked_at"))["at"]
        beat = Worker.objects.get(identity=identity).heartbeat_at
        return beat < cutoff and newest_lock < cutoff

    wait_until(all_stale, timeout=3 * T, what="the heartbeat to go stale")
    before = timezone.now()
    workoff = jobs_cmd("jobs", "workoff", workers=[group(**KEEP)], heartbeat=T)
    assert workoff.wait(30) == 0, workoff.output()
    assert "recovered 4 job(s)" in workoff.output()
    # Never started: given back unspent, run by this workoff at once, one attempt each.
    for row in waiting:
        row = row_of(row)
        assert (row.attempts, row.last_error, row.locked_by) == (1, "", None)
        assert row.finished_at is not None
        assert Execution.objects.filter(key=row.args[0]).count() == 1
    # Started: charged its attempt, to run again after its back-off (not by this workoff).
    crashed = row_of(crashed)
    assert crashed.last_error == f"worker {identity} died while running this job"
    assert (crashed.attempts, crashed.locked_by, crashed.failed_at) == (2, None, None)
    assert crashed.run_at > before + timedelta(seconds=10)
    assert Execution.objects.filter(key="crashed:start").count() == 1
    assert not Worker.objects.filter(identity=identity).exists()
