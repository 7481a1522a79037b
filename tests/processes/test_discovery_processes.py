"""Jobs workers would not know, with real processes outside Django's test environment:
refused at enqueue (``manage.py shell``), reported by ``manage.py check``, and refused
when a running job declares one in a worker."""

from __future__ import annotations

import signal

import pytest

from django_jobs.models import Job
from tests.conftest import wait_until
from tests.processes.app import jobs as app_jobs
from tests.processes.conftest import group
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

LATE = "from tests.testapp import late_jobs; late_jobs.declared_late.enqueue('x')"
IN_TIME = "from tests.testapp import jobs; print('stored', jobs.record.enqueue('in time').pk)"


def test_enqueueing_a_job_from_a_module_workers_never_import_fails_at_the_call(processes):
    late = processes("shell", "-c", LATE)
    assert late.wait(60) != 0
    out = late.output()
    assert (
        "JobNotImported: job late:declared is declared in tests.testapp.late_jobs, which was "
        "imported after Django loaded its apps" in out
    ), out
    assert "Move the job to tests.testapp.jobs, or import tests.testapp.late_jobs from there" in out
    assert not Job.objects.exists()
    in_time = processes("shell", "-c", IN_TIME)
    assert in_time.wait(60) == 0, in_time.output()
    assert Job.objects.get().name == jobs.record.name


def test_check_reports_a_job_the_urlconf_declares(processes):
    check = processes("check", env={"DJANGO_JOBS_ROOT_URLCONF": "tests.testapp.late_urls"})
    assert check.wait(60) == 1
    out = check.output()
    assert "late:declared: (django_jobs.E181) job late:declared is declared in" in out, out
    clean = processes("check")
    assert clean.wait(60) == 0, clean.output()


def test_a_job_declared_inside_a_worker_is_refused_and_the_worker_goes_on(jobs_cmd):
    row = app_jobs.declares_a_job.enqueue("lazy")
    worker = jobs_cmd("jobs", "work", workers=[group(1)])
    failed = wait_until(
        lambda: Job.objects.filter(pk=row.pk, failed_at__isnull=False).first(),
        what="the job that declares a job failed",
    )
    assert (
        "ImproperlyConfigured: job lazy:declared (tests.processes.app.lazy_jobs) is declared "
        "after this worker started (worker" in failed.last_error
    ), failed.last_error
    assert Execution.objects.filter(key="lazy:start").exists()
    assert not Execution.objects.filter(key="lazy").exists()
    after = jobs.record.enqueue("after the refusal")
    wait_until(lambda: Execution.objects.filter(key="after the refusal").exists())
    assert not Job.objects.filter(pk=after.pk).exists()
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()[-3000:]
