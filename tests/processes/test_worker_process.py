"""A real worker process drains jobs enqueued by the test."""

import signal

import pytest

from django_jobs import later
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes


def test_worker_process_runs_jobs_and_stops_on_sigterm(processes):
    later(jobs.record, ["first"])
    worker = processes("jobs", "worker", "--index", "0", "--id", "1")
    wait_until(lambda: Execution.objects.filter(key="first").exists(), what="first job")
    later(jobs.record, ["second"])
    wait_until(lambda: Execution.objects.filter(key="second").exists(), what="second job")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    out = worker.output()
    assert "job" in out and "succeeded in" in out
