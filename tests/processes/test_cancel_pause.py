"""Cancellation and paused queues with real worker processes (issue 17's proofs).

Workers beat every 0.5 s (HEARTBEAT_TIMEOUT 3) and poll every 0.5 s (SLEEP_DELAY), so on
SQLite and MariaDB a pause or a cancellation reaches them within 0.5 s; on PostgreSQL a
NOTIFY brings it at once.
"""

import random
import time
from collections import Counter

import pytest
from django.db import connection

from django_jobs import cancel, later, later_many, pause, resume
from django_jobs.cancelling import CANCELLED, ENDED, STOPPING
from django_jobs.models import Job
from django_jobs.runtime.watchdog import CHECK_EVERY
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import gone, group, live_workers
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

T = 3  # HEARTBEAT_TIMEOUT: beats (and polls) every 0.5 s
BEAT = T / 6
GRACE = 1.0
KEEP = {"DELETE_SUCCESSFUL_JOBS": False}
#: Time for a process to be scheduled, write and exit on a loaded 2-core machine.
SLACK = 3.0


def ran(key: str) -> bool:
    return Execution.objects.filter(key=key).exists()


def row(job) -> Job:
    job.refresh_from_db()
    return job


def test_a_cancelled_scheduled_job_never_runs(jobs_cmd):
    later_one = later(jobs.record, ["cancelled-later"], wait=1)
    ready_one = later(jobs.record, ["cancelled-ready"])
    assert cancel(later_one.pk, by="ops", reason="not needed").outcome == CANCELLED
    assert cancel(ready_one.pk).outcome == CANCELLED
    marker = later(jobs.record, ["marker"], wait=1.5)
    jobs_cmd("jobs", "work", workers=[group(**KEEP)], heartbeat=T)
    wait_until(lambda: row(marker).status == "succeeded", what="a job due after both")
    assert not ran("cancelled-later") and not ran("cancelled-ready")
    for job in (later_one, ready_one):
        assert row(job).status == "cancelled" and job.attempts == 0
    assert later_one.last_error == "Cancelled by ops: not needed"
    assert not cancel(later_one.pk).changed  # already cancelled: says so


def test_a_running_job_that_ignores_its_cancellation_is_stopped_and_its_worker_replaced(
    jobs_cmd,
):
    sixty = later(process_jobs.long_one, ["sixty"], {"seconds": 60})  # max_attempts=2
    other = later(process_jobs.long_one, ["other"], {"seconds": 2})
    supervisor = jobs_cmd(
        "jobs", "work", workers=[group(THREADS=2, **KEEP)], heartbeat=T,
        DJANGO_JOBS_CANCEL_GRACE=str(GRACE),
    )  # fmt: skip
    wait_until(lambda: ran("sixty:start") and ran("other:start"), what="both jobs to start")
    [(identity, pid)] = live_workers(1).items()
    asked = time.monotonic()
    result = cancel(sixty.pk, by="ops")
    assert result.outcome == STOPPING and result.changed
    assert row(sixty).status == "running" and sixty.cancel_requested
    wait_until(lambda: gone([pid]), timeout=GRACE + BEAT + SLACK + 5, what="the worker to stop")
    took = time.monotonic() - asked
    assert took <= GRACE + BEAT + CHECK_EVERY + SLACK, took
    row(sixty)
    assert sixty.status == "cancelled" and sixty.attempts == 1
    assert sixty.last_error.startswith("Cancelled by ops while running\n")
    assert "did not stop within CANCEL_GRACE (1 s)" in sixty.last_error
    assert not ran("sixty")
    # The other job was running in the same process: given back unspent, run again.
    wait_until(lambda: row(other).status == "succeeded", what="the other job to run again")
    assert other.attempts == 1 and other.last_error == ""
    starts = Execution.objects.filter(key="other:start").order_by("id")
    assert [e.pid for e in starts][0] == pid and starts.count() == 2
    [new_pid] = live_workers(1).values()
    assert new_pid != pid and Execution.objects.get(key="other").pid == new_pid
    assert "a cancelled job did not stop in time" in supervisor.output()
    assert row(sixty).status == "cancelled"  # not retried by the new worker


def test_cancellations_racing_claims_and_ends_leave_each_job_succeeded_or_cancelled(jobs_cmd):
    """100 short jobs on two workers of two threads, each cancelled at a random moment:
    whatever the race, a job ends once, succeeded or cancelled, never failed or retried."""
    rows = later_many(jobs.record, [[f"race-{n}", 0.1] for n in range(100)])
    jobs_cmd("jobs", "work", workers=[group(2, THREADS=2, **KEEP)], heartbeat=T)
    live_workers(2)
    random.seed(17)
    random.shuffle(rows)
    outcomes = {}
    for job in rows:
        outcomes[job.pk] = cancel(job.pk).outcome
        time.sleep(random.uniform(0, 0.01))
    wait_until(
        lambda: not Job.objects.filter(failed_at=None, finished_at=None).exists(),
        what="every job to end",
    )
    ran = Counter(Execution.objects.values_list("key", flat=True))
    assert max(ran.values(), default=1) == 1  # no job ran twice
    for job in rows:
        row(job)
        outcome, executed = outcomes[job.pk], ran[job.args[0]]
        assert job.status in ("succeeded", "cancelled"), (job.pk, outcome, job.last_error)
        assert job.attempts <= 1 and job.locked_at is None
        if outcome == CANCELLED:  # it was waiting: it never ran
            assert job.status == "cancelled" and not executed and job.attempts == 0
        elif outcome == ENDED:
            assert job.status == "succeeded" and executed
        elif job.status == "succeeded":  # it ended before its worker learned of it
            assert executed
    counts = Counter(outcomes.values())
    assert counts[CANCELLED] and counts[STOPPING] and sum(counts.values()) == 100, counts
    assert len(live_workers(2)) == 2  # nobody had to be stopped


def test_a_cooperative_job_stops_by_itself_and_its_worker_lives_on(jobs_cmd):
    job = later(process_jobs.cooperative, ["coop"])
    jobs_cmd("jobs", "work", workers=[group(**KEEP)], heartbeat=T)
    wait_until(lambda: row(job).progress, what="the job to start")
    [pid] = live_workers(1).values()
    asked = time.monotonic()
    cancel(job.pk, reason="user left")
    wait_until(lambda: ran("coop:stopped"), timeout=BEAT + SLACK + 5, what="the job to stop")
    assert time.monotonic() - asked <= BEAT + SLACK
    wait_until(lambda: row(job).status == "cancelled", what="the cancellation to be recorded")
    assert "after its worker learned of the cancellation" in job.last_error
    assert job.last_error.startswith("Cancelled while running: user left")
    assert live_workers(1) and not gone([pid])  # no replacement needed
    assert list(live_workers(1).values()) == [pid]


def test_a_paused_queue_runs_nothing_while_others_run_and_resume_runs_its_backlog(jobs_cmd):
    workers = [group(), {**group(), "QUEUE": ["email", "default"]}]
    first = jobs_cmd("jobs", "worker", "--id", "1", workers=workers, heartbeat=T)
    live_workers(1)
    paused_at = time.monotonic()
    pause("email", by="ops", reason="SMTP provider down")
    # "queue(s) paused, not claimed from", or, when the pause beat the worker's first read
    # of the paused queues, "paused queue(s) not claimed from" (seen in CI on MariaDB).
    wait_until(lambda: "not claimed from: email" in first.output(), what="the pause")
    if connection.vendor == "postgresql":
        assert time.monotonic() - paused_at < 1.0  # NOTIFY, not a poll
    assert time.monotonic() - paused_at <= BEAT + SLACK
    # Another process with another identity (group 1 names the queue): started paused.
    second = jobs_cmd("jobs", "worker", "--index", "1", "--id", "2", workers=workers, heartbeat=T)
    live_workers(2)
    emails = [later(jobs.send_email, [f"user{n}@example.com"]) for n in range(6)]
    end = time.monotonic() + 5
    n = 0
    while time.monotonic() < end:  # the default queue keeps running meanwhile
        key = f"default-{n}"
        later(jobs.record, [key])
        wait_until(lambda key=key: ran(key), timeout=5, what=f"{key} to run")
        n += 1
        time.sleep(0.2)
    assert n >= 10
    assert not Execution.objects.filter(key__startswith="email:").exists()
    assert all(row(job).status == "scheduled" for job in emails)
    pids = set(Execution.objects.filter(key__startswith="default-").values_list("pid", flat=True))
    assert len(pids) == 2  # both workers were claiming all along
    resumed_at = time.monotonic()
    assert resume("email")
    wait_until(
        lambda: Execution.objects.filter(key__startswith="email:").count() == 6,
        timeout=BEAT + SLACK + 5, what="the backlog to run",
    )  # fmt: skip
    assert time.monotonic() - resumed_at <= BEAT + SLACK
    wait_until(lambda: "resumed: email" in second.output(), timeout=BEAT + SLACK, what="a log")
