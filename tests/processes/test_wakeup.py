"""Idle workers wake for new jobs at once (NOTIFY, data_version, cheap polls), with fallbacks."""

import json
import time

import pytest
from django.utils import timezone

from django_jobs import later
from django_jobs.models import Job
from django_jobs.models import Worker as WorkerRow
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes


def idle_worker(processes, sleep_delay: float):
    groups = [{"QUEUE": "*", "COUNT": 1, "SLEEP_DELAY": sleep_delay}]
    worker = processes(
        "jobs",
        "worker",
        "--index",
        "0",
        "--id",
        "w",
        env={"DJANGO_JOBS_WORKERS": json.dumps(groups)},
    )
    wait_until(lambda: WorkerRow.objects.exists(), what="the worker to register")
    return worker


def test_a_new_job_wakes_an_idle_worker_long_before_its_sleep_delay(processes):
    idle_worker(processes, sleep_delay=60)
    for n in range(3):
        started = time.monotonic()
        later(jobs.record, [f"wake{n}"])
        wait_until(lambda n=n: Execution.objects.filter(key=f"wake{n}").exists(), timeout=10)
        # Polling would take up to 60 s here; a wake-up takes milliseconds.
        assert time.monotonic() - started < 2.0


def test_jobs_that_bypass_the_wake_up_are_found_by_the_fallback_poll(processes):
    idle_worker(processes, sleep_delay=1)
    # A row written without later(): no NOTIFY is sent (what a lost notification looks like).
    Job.objects.create(name=jobs.record.name, args=["silent"], run_at=timezone.now())
    wait_until(lambda: Execution.objects.filter(key="silent").exists(), timeout=10)


def test_jobs_scheduled_for_later_run_when_they_come_due(processes):
    idle_worker(processes, sleep_delay=0.5)
    later(jobs.record, ["due-soon"], wait=1.5)
    time.sleep(0.5)  # a negative check: nothing may run before it is due
    assert not Execution.objects.filter(key="due-soon").exists()
    wait_until(lambda: Execution.objects.filter(key="due-soon").exists(), timeout=10)
