"""Results retention (TASK_RESULTS_TTL, pruning), @job(keep_result=True), and task rows in
the admin beside @job rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings

from django_jobs import clock, job
from django_jobs.models import Job
from django_jobs.pruning import prune
from django_jobs.tasks import framework
from django_jobs.testing import run_jobs
from tests.testapp import tasks

api = framework.load()
pytestmark = pytest.mark.django_db(transaction=True)
DAY = timedelta(days=1)


def aged(result_id: str, age: timedelta) -> None:
    """Move a finished row's times ``age`` into the past."""
    row = Job.objects.get(pk=int(result_id))
    for column in ("finished_at", "failed_at"):
        if getattr(row, column) is not None:
            setattr(row, column, clock.now() - age)
    row.save()


def test_finished_task_rows_stay_for_task_results_ttl_whatever_succeeded_after_says():
    ok = tasks.add.enqueue(1, 1)
    bad = tasks.fail.enqueue()
    plain = job(lambda: None, name="tests.plain")
    done = plain.enqueue()
    with override_settings(
        JOBS={**settings.JOBS, "TASK_RESULTS_TTL": 7 * 24 * 3600,
              "WORKERS": [{"QUEUE": "*", "MAX_ATTEMPTS": 1, "DELETE_SUCCESSFUL_JOBS": False}],
              "PRUNE": {"SUCCEEDED_AFTER": 3600, "FAILED_AFTER": 3600}},
    ):  # fmt: skip
        run_jobs()
        for pk in (ok.id, bad.id, str(done.pk)):
            aged(pk, 2 * DAY)
        report = prune()
        assert (report.succeeded, report.failed, report.results) == (1, 0, 0)
        ok.refresh()
        bad.refresh()
        assert ok.status == "SUCCESSFUL" and bad.status == "FAILED"
        aged(ok.id, 8 * DAY)
        aged(bad.id, 8 * DAY)
        assert prune(dry_run=True).results == 2
        report = prune()
        assert report.results == 2 and "Deleted 2 finished task results" in report.summary()
    with pytest.raises(api.TaskResultDoesNotExist):
        ok.refresh()


def test_task_results_ttl_none_keeps_results_for_ever():
    ok = tasks.add.enqueue(1, 1)
    run_jobs()
    aged(ok.id, 1000 * DAY)
    with override_settings(JOBS={**settings.JOBS, "TASK_RESULTS_TTL": None}):
        assert prune().results == 0
    ok.refresh()


def test_a_job_declared_with_keep_result_keeps_its_return_value():
    @job(keep_result=True)
    def answer(x):
        return {"x": x, "list": (1, 2)}

    @job(keep_result=True)
    def opaque():
        return object()

    kept = answer.enqueue(5)
    broken = opaque.enqueue()
    run = run_jobs(include_scheduled=True)
    assert run.succeeded == 1 and run.failed == 1 and run.retried == 0
    kept.refresh_from_db()
    assert kept.finished_at is not None and kept.return_value == {"x": 5, "list": [1, 2]}
    broken.refresh_from_db()
    assert broken.failed_at is not None and broken.attempts == 1
    assert "ResultNotSerializable" in broken.last_error
    assert broken.attempt_log is None  # only task rows log their attempts


def test_a_job_without_keep_result_is_deleted_on_success_as_before():
    @job
    def plain():
        return 1

    plain.enqueue()
    run_jobs()
    assert not Job.objects.exists()


# -- admin -------------------------------------------------------------------------------


def test_the_job_list_labels_task_rows_and_shows_jobs_beside_them(admin_client):
    result = tasks.add.enqueue(1, 2)
    record = job(lambda key: None, name="tests.testapp.listed")
    record.enqueue("x")
    page = admin_client.get("/admin/django_jobs/job/").content.decode()
    assert 'title="tests.testapp.tasks.add">add</span>' in page
    assert ">task</span>" in page and f"#{result.id}" in page
    assert 'title="tests.testapp.listed">listed</span>' in page
    detail = admin_client.get(f"/admin/django_jobs/job/{result.id}/change/")
    assert detail.status_code == 200


def test_retry_run_now_and_discard_work_on_task_rows(admin_client):
    failed = tasks.fail.using(priority=5).enqueue()
    with override_settings(JOBS={**settings.JOBS, "WORKERS": [{"QUEUE": "*", "MAX_ATTEMPTS": 1}]}):
        run_jobs()
    failed.refresh()
    assert failed.status == "FAILED"
    later = tasks.add.using(run_after=clock.now() + DAY).enqueue(2, 2)
    gone = tasks.add.enqueue(0, 0)

    def act(action, result):
        data = {"action": action, "_selected_action": [result.id], "post": "yes"}
        assert admin_client.post("/admin/django_jobs/job/", data).status_code == 302

    act("retry_selected", failed)
    failed.refresh()
    assert failed.status == "READY" and len(failed.errors) == 1  # earlier errors stay
    act("run_now_selected", later)
    act("discard_selected", gone)
    with pytest.raises(api.TaskResultDoesNotExist):
        gone.refresh()
    run_jobs()
    later.refresh()
    assert later.status == "SUCCESSFUL" and later.return_value == 4
    failed.refresh()  # retried: its second error (of the group's three attempts)
    assert failed.status == "READY" and len(failed.errors) == 2


def test_failed_task_rows_are_kept_whatever_delete_failed_jobs_says():
    group = {"QUEUE": "*", "MAX_ATTEMPTS": 1, "DELETE_FAILED_JOBS": True}
    with override_settings(JOBS={**settings.JOBS, "WORKERS": [group]}):
        failed = tasks.fail.enqueue()
        plain = job(lambda: 1 / 0, name="tests.fails")
        row = plain.enqueue()
        run_jobs()
    failed.refresh()
    assert failed.status == "FAILED" and len(failed.errors) == 1
    assert not Job.objects.filter(pk=row.pk).exists()  # a @job's row goes, as before


# -- cancellation ---------------------------------------------------------------------------


def test_a_cancelled_waiting_task_is_failed_without_running():
    from django_jobs import cancel

    result = tasks.add.enqueue(1, 1)
    cancel(int(result.id), reason="not needed")
    result.refresh()
    assert result.status == "FAILED" and result.errors == [] and result.attempts == 0
    assert run_jobs().succeeded == 0


def test_a_task_cancelled_while_it_ran_lists_that_attempt_as_job_cancelled():
    import time

    from django_jobs import cancel
    from django_jobs.exceptions import JobCancelled
    from django_jobs.executor import Call, cancelled_outcome
    from django_jobs.storage import get_storage

    result = tasks.add.enqueue(1, 1)
    storage = get_storage()
    [claimed] = storage.claim("worker-a", None, 10, clock.now())
    call = Call(claimed, lambda claimed, definition: None)
    call.started = call.cancel_seen = time.monotonic()
    call.started_at = time.time()
    cancel(int(result.id))
    assert storage.record([cancelled_outcome(call, None)], clock.now()) == 1
    result.refresh()
    assert result.status == "FAILED" and result.worker_ids == ["worker-a"]
    [error] = result.errors
    assert error.exception_class is JobCancelled and "after its worker learned" in error.traceback
