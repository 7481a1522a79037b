"""The claim → perform → retry → fail cycle, through the real worker loop in-process."""

import datetime as dt

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from django_jobs import later, later_many
from django_jobs.conf import jobs_settings
from django_jobs.models import Job, JobStatus
from django_jobs.models import Worker as WorkerRow
from django_jobs.runtime.worker import Worker
from django_jobs.storage import get_storage
from django_jobs.storage.base import Storage
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def workoff(**group_overrides) -> Worker:
    # Policy (MAX_ATTEMPTS, DELETE_*) comes from settings wherever a job runs, so the
    # overrides go through JOBS, not only into the worker's own group.
    group = {key.upper(): value for key, value in group_overrides.items()}
    workers = [{**settings.JOBS["WORKERS"][0], **group}, *settings.JOBS["WORKERS"][1:]]
    with override_settings(JOBS={**settings.JOBS, "WORKERS": workers}):
        worker = Worker(jobs_settings().workers[0], "test", workoff=True)
        worker.run()
    return worker


def test_success_deletes_the_row_by_default():
    later(jobs.record, ["done"])
    workoff()
    assert Execution.objects.filter(key="done").count() == 1
    assert Job.objects.count() == 0
    assert WorkerRow.objects.count() == 0  # deregistered on exit


def test_success_keeps_the_row_when_asked():
    row = later(jobs.record, ["kept"])
    workoff(delete_successful_jobs=False)
    row.refresh_from_db()
    assert row.status == JobStatus.SUCCEEDED and row.finished_at is not None
    assert row.locked_at is None and row.locked_by is None and row.attempts == 1


def test_error_records_traceback_clears_lock_and_backs_off_attempts_to_the_fourth():
    row = later(jobs.fail, ["kaboom"])
    before = timezone.now()
    workoff()
    row.refresh_from_db()
    assert row.status == JobStatus.SCHEDULED and row.attempts == 1
    assert "Traceback" in row.last_error and "ValueError: kaboom" in row.last_error
    assert 'jobs.py", line' in row.last_error
    assert row.locked_at is None and row.locked_by is None and row.failed_at is None
    assert (
        before + dt.timedelta(seconds=1) <= row.run_at <= timezone.now() + dt.timedelta(seconds=1)
    )
    # Third attempt: back-off 3**4 = 81 s.
    Job.objects.filter(pk=row.pk).update(run_at=timezone.now(), attempts=2)
    before = timezone.now()
    workoff(max_attempts=5)
    row.refresh_from_db()
    assert row.attempts == 3
    assert (
        before + dt.timedelta(seconds=81) <= row.run_at <= timezone.now() + dt.timedelta(seconds=81)
    )


def test_the_last_attempt_fails_the_job_for_good():
    row = later(jobs.fail, ["last"])
    Job.objects.filter(pk=row.pk).update(attempts=2)  # group MAX_ATTEMPTS is 3 in tests
    workoff()
    row.refresh_from_db()
    assert row.status == JobStatus.FAILED
    assert row.run_at is None and row.failed_at is not None and row.attempts == 3
    assert "ValueError: last" in row.last_error


def test_job_max_attempts_overrides_the_group_and_failed_rows_can_be_deleted():
    kept = later(jobs.fail_for_good)
    workoff()
    kept.refresh_from_db()
    assert kept.status == JobStatus.FAILED and kept.attempts == 1
    later(jobs.fail_for_good)
    workoff(delete_failed_jobs=True)
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]


def test_a_job_that_fails_once_succeeds_on_retry():
    row = later(jobs.fail_once, ["retry-me"])
    workoff()
    Job.objects.filter(pk=row.pk).update(run_at=timezone.now())
    workoff()
    assert Execution.objects.filter(key="retry-me").count() == 1
    assert not Job.objects.exists()


def test_unregistered_names_bad_arguments_and_corrupt_rows_are_errors_not_crashes():
    a = later(jobs.record, ["x"])
    b = later(jobs.record, ["y"])
    c = later(jobs.record, ["z"])
    Job.objects.filter(pk=a.pk).update(name="os.system")
    Job.objects.filter(pk=b.pk).update(args=[1, 2, 3, 4])
    Job.objects.filter(pk=c.pk).update(args={"not": "a list"})
    good = later(jobs.record, ["fine"])
    workoff()
    a.refresh_from_db(), b.refresh_from_db(), c.refresh_from_db()
    assert "JobNotRegistered" in a.last_error and "os.system" in a.last_error
    assert "no longer fit" in b.last_error
    assert "CorruptRow" in c.last_error
    assert not Job.objects.filter(pk=good.pk).exists()
    assert Execution.objects.filter(key="fine").count() == 1


def test_claim_order_is_priority_then_run_at_and_future_jobs_wait():
    now = timezone.now()
    later(jobs.record, ["low"], priority=90)
    later(jobs.record, ["future"], priority=0, wait=3600)
    later(jobs.record, ["old-normal"], wait_until=now - dt.timedelta(minutes=5))
    later(jobs.record, ["normal"])
    later(jobs.record, ["high"], priority=1)
    storage = get_storage()
    claimed = storage.claim("me", None, 10, timezone.now())
    assert [c.args[0] for c in claimed] == ["high", "old-normal", "normal", "low"]
    assert all(c.attempts == 1 for c in claimed)
    assert storage.claim("other", None, 10, timezone.now()) == []
    assert Job.objects.running().count() == 4
    assert set(Job.objects.running().values_list("locked_by", flat=True)) == {"me"}


def test_claim_respects_queues_and_limits():
    for i in range(5):
        later(jobs.record, [f"d{i}"])
        later(jobs.send_email, [f"e{i}"])
    storage = get_storage()
    first = storage.claim("a", ("email",), 3, timezone.now())
    assert [c.queue for c in first] == ["email"] * 3
    rest = storage.claim("b", ("email", "default"), 100, timezone.now())
    assert len(rest) == 7
    assert not {c.id for c in first} & {c.id for c in rest}


def test_outcomes_of_an_earlier_claim_are_dropped_even_for_the_same_identity():
    from django_jobs.storage import Outcome, StartMark

    later(jobs.record, ["x"])
    storage = get_storage()
    [first] = storage.claim("same-identity", None, 1, timezone.now())
    # Recovery takes it away; the same identity (a restarted slot) claims it again.
    assert storage.release([first], timezone.now()) == 1
    [second] = storage.claim("same-identity", None, 1, timezone.now())
    assert second.id == first.id and second.token != first.token
    now = timezone.now()
    assert storage.mark_started([StartMark(first, now, None)], now) == 0
    assert storage.record([Outcome(first, "succeeded")], now) == 0
    assert storage.release([first], now) == 0
    row = Job.objects.get()
    assert row.locked_by == "same-identity" and row.claim_token == second.token
    assert row.started_at is None
    assert storage.record([Outcome(second, "succeeded")], now) == 1
    assert not Job.objects.exists()


def test_release_gives_the_attempt_back():
    later(jobs.record, ["x"])
    storage = get_storage()
    [claimed] = storage.claim("w", None, 1, timezone.now())
    assert storage.release([claimed], timezone.now()) == 1
    row = Job.objects.get()
    assert row.attempts == 0 and row.locked_at is None and row.status == JobStatus.SCHEDULED


def test_context_jobs_get_attempt_and_progress():
    row = later(jobs.with_context, ["ctx"])
    workoff(delete_successful_jobs=False)
    assert Execution.objects.filter(key=f"ctx:1:{row.pk}").exists()
    row.refresh_from_db()
    assert (row.progress, row.progress_message) == (50, "half way")


def test_async_jobs_and_threads_run():
    for i in range(6):
        later(jobs.async_record, [f"a{i}"], {"sleep": 0.05})
        later(jobs.record, [f"s{i}"], {"sleep": 0.05})
    workoff(threads=3, async_concurrency=3)
    assert Execution.objects.count() == 12
    assert not Job.objects.exists()


def test_async_jobs_reach_the_loop_one_batch_per_claim(monkeypatch):
    """Each claim's async jobs cross to the event loop in one hand-off, not one each."""
    claims = []
    claim = Storage.claim

    def counted(self, *args, **kwargs):
        jobs = claim(self, *args, **kwargs)
        if jobs:
            claims.append(len(jobs))
        return jobs

    monkeypatch.setattr(Storage, "claim", counted)
    later_many(jobs.async_record, [[f"b{i}"] for i in range(40)])
    worker = workoff(async_concurrency=40, batch_size=40)
    assert Execution.objects.count() == 40 and not Job.objects.exists()
    assert sum(claims) == 40
    assert worker.asyncs.sends == len(claims) and worker.asyncs.reports <= 40
