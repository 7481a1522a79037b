"""Typed payloads through real ``jobs work`` processes: what a worker hands the job is of
the annotated type with the enqueued value, on every database; a row that no longer fits
its annotation is an error naming the parameter, and the worker goes on."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest

from django_jobs.models import Job
from tests.conftest import wait_until
from tests.processes.conftest import group
from tests.testapp.models import Execution
from tests.testapp.typed_jobs import canonical, roundtrip, when_only
from tests.unit.test_typed_payloads import arguments

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def kept(pk: int) -> Job | None:
    row = Job.objects.filter(pk=pk, finished_at__isnull=False).first()
    return row


def stop(worker) -> None:
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0, worker.output()[-3000:]


def test_a_worker_hands_every_type_back_and_records_a_changed_annotation(jobs_cmd):
    sent = arguments()
    key = sent.pop("key")
    typed = roundtrip.enqueue(key, **sent)
    when = datetime(2026, 10, 25, 2, 30, tzinfo=timezone(timedelta(hours=2)))
    single = when_only.enqueue("aware", when)
    # A row enqueued when "when" was still a str: it cannot become a datetime.
    changed = Job.objects.create(
        name="typed:when", args=["changed", "tomorrow"], kwargs={}, run_at=Job.objects
        .get(pk=single.pk).run_at
    )  # fmt: skip
    worker = jobs_cmd("jobs", "work", workers=[group(1, MAX_ATTEMPTS=1)])
    row = wait_until(lambda: kept(typed.pk), what="the typed job kept with its result")
    assert row.return_value == canonical({"key": key, **sent})
    assert wait_until(lambda: kept(single.pk)).return_value == canonical({"when": when})
    failed = wait_until(
        lambda: Job.objects.filter(pk=changed.pk, failed_at__isnull=False).first(),
        what="the changed row failed",
    )
    assert "InvalidArgument: the stored argument 'when' of job typed:when" in failed.last_error
    assert not Execution.objects.filter(key="changed").exists()
    # The worker lives on and takes the next job.
    again = when_only.enqueue("after", when)
    wait_until(lambda: kept(again.pk), what="a job after the failed one")
    stop(worker)


@pytest.mark.parametrize("aware", [False, True], ids=["naive", "aware"])
def test_without_use_tz_a_worker_keeps_naive_naive_and_aware_aware(jobs_cmd, settings, aware):
    settings.USE_TZ = False
    when = datetime(2026, 3, 29, 2, 30, 15, 250000)
    if aware:
        when = when.replace(tzinfo=timezone(timedelta(hours=-3)))
    row = when_only.enqueue("use_tz off", when)
    worker = jobs_cmd("jobs", "work", workers=[group(1)], DJANGO_JOBS_USE_TZ="0")
    done = wait_until(lambda: kept(row.pk), what="the job under USE_TZ = False")
    assert done.return_value == canonical({"when": when})
    stop(worker)
