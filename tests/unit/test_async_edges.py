"""Jobs that end in unusual ways, through the real worker loop running in a thread.

A resident worker (not ``workoff``) is used on purpose: a stuck slot shows as jobs that
never run while the worker waits, which ``workoff`` (it returns when nothing is ready)
would hide.
"""

import threading
import time
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.test import override_settings

from django_jobs import later, later_many
from django_jobs.conf import jobs_settings
from django_jobs.models import Job
from django_jobs.runtime.worker import Worker
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def running_worker(**group_overrides):
    """A worker in a background thread; stopped, and checked to have ended cleanly, after."""
    group = {key.upper(): value for key, value in group_overrides.items()}
    workers = [{**settings.JOBS["WORKERS"][0], "DELETE_SUCCESSFUL_JOBS": False, **group}]
    with override_settings(JOBS={**settings.JOBS, "WORKERS": workers}):
        worker = Worker(jobs_settings().workers[0], "edges")
        escaped: list[BaseException] = []

        def work():
            try:
                worker.run()
            except BaseException as exc:  # what a worker process would die of
                escaped.append(exc)

        thread = threading.Thread(target=work, name="test-worker", daemon=True)
        thread.start()
        try:
            yield worker
        finally:
            worker.stopping.set()
            worker.immediate = True
            worker.wake()
            thread.join(15)
        assert not thread.is_alive(), "the worker did not stop"
        assert escaped == []


def row(pk: int) -> Job:
    return Job.objects.get(pk=pk)


def test_cancelled_error_from_an_async_job_is_its_error_within_a_second_and_frees_the_slot():
    cancelled = [later(jobs.async_cancelled, [f"cancel-{n}"]) for n in range(2)]
    # One async slot: had a CancelledError kept it, none of these would ever run.
    later_many(jobs.async_record, [[f"after-{n}"] for n in range(3)])
    with running_worker(async_concurrency=1):
        for job in cancelled:
            key = job.args[0]
            started = wait_until(
                lambda key=key: Execution.objects.filter(key=key).first(),
                timeout=10, what=f"{key} to start",
            )  # fmt: skip
            wait_until(
                lambda job=job: "CancelledError" in row(job.pk).last_error,
                timeout=1.0, what=f"{key}'s CancelledError to be recorded",
            )  # fmt: skip
            assert time.time() - started.started < 1.0
        # Their outcomes, not only their side effects: a job's Execution row is written
        # before its success is, and leaving the block stops the worker.
        wait_until(
            lambda: Job.objects.succeeded().filter(name__endswith="async_record").count() == 3,
            timeout=10, what="the async jobs behind them to run",
        )  # fmt: skip
    for job in cancelled:
        job = row(job.pk)
        assert "cancelled by the job itself" in job.last_error
        # An ordinary errored attempt: retried later, not a timeout, not left locked.
        assert (job.attempts, job.locked_by, job.failed_at) == (1, None, None)
        assert job.status == "scheduled" and "JobTimeout" not in job.last_error
    assert Execution.objects.filter(key__startswith="after-").count() == 3


def test_keyboard_interrupt_in_a_pool_thread_is_the_jobs_error_and_frees_its_slot():
    # As many interrupting jobs as threads: a lost slot each would leave none.
    interrupted = [later(jobs.keyboard_interrupt, [f"ki-{n}"]) for n in range(2)]
    later_many(jobs.record, [[f"then-{n}"] for n in range(5)])
    with running_worker(threads=2):
        wait_until(
            lambda: Execution.objects.filter(key__startswith="then-").count() == 5,
            timeout=10, what="more jobs than threads to run after the interrupts",
        )  # fmt: skip
        wait_until(
            lambda: all("KeyboardInterrupt" in row(j.pk).last_error for j in interrupted),
            timeout=5, what="the interrupts to be recorded",
        )  # fmt: skip
    for job in interrupted:
        job = row(job.pk)
        assert (job.attempts, job.locked_by, job.status) == (1, None, "scheduled")
    assert Job.objects.succeeded().filter(name__endswith=".record").count() == 5


def test_aprogress_and_progress_from_async_jobs_store_progress():
    awaited = later(jobs.async_aprogress, ["awaited"])
    called = later(jobs.async_progress, ["called"])
    with running_worker():
        wait_until(
            lambda: Job.objects.succeeded().filter(pk__in=[awaited.pk, called.pk]).count() == 2,
            timeout=10, what="both async jobs to succeed",
        )  # fmt: skip
    awaited, called = row(awaited.pk), row(called.pk)
    # Neither raised (SynchronousOnlyOperation was the old failure).
    assert awaited.last_error == "" and called.last_error == ""
    assert (awaited.progress, awaited.progress_message) == (50, "half")
    assert Execution.objects.filter(key="awaited").exists()
    # The job saw its progress on its own row while it ran, not only after it ended.
    assert Execution.objects.filter(key="called:seen").exists()
    assert (called.progress, called.progress_message) == (60, "sync call")
