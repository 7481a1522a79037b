"""cancel(), pause() and resume() against the real database, and what the statements that
end a claim do to a row whose cancellation was asked for."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_jobs import JobNotFound, UnknownQueue, cancel, checks, later, pause, resume
from django_jobs.cancelling import CANCELLED, ENDED, STOPPING
from django_jobs.conf import jobs_settings
from django_jobs.executor import errored
from django_jobs.models import Job, QueuePause
from django_jobs.pausing import claim_filter, paused_queues
from django_jobs.runtime.lifeline import recover_worker_jobs
from django_jobs.runtime.status import render_status
from django_jobs.storage import OUTCOME_CANCELLED, OUTCOME_SUCCEEDED, Outcome, get_storage
from django_jobs.testing import run_jobs
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def claim(job: Job, queues=None, exclude=()):
    [claimed] = [c for c in get_storage().claim("w", queues, 100, timezone.now(), exclude)
                 if c.id == job.pk]  # fmt: skip
    return claimed


def fresh(job: Job) -> Job:
    job.refresh_from_db()
    return job


# -- cancel() -----------------------------------------------------------------------------


def test_a_waiting_job_is_cancelled_at_once_with_who_and_why():
    job = later(jobs.record, ["x"], wait=60)
    Job.objects.filter(pk=job.pk).update(unique_key="k")
    result = cancel(job.pk, by="alice", reason="customer left")
    assert (result.outcome, result.changed, result.status) == (CANCELLED, True, "cancelled")
    assert result.cancelled and "will never run" in str(result)
    fresh(job)
    assert job.status == "cancelled" and job.failed_at and job.cancelled_at
    assert job.last_error == "Cancelled by alice: customer left"
    assert job.unique_key is None and job.run_at is None
    assert not Job.objects.scheduled().exists()
    assert list(Job.objects.cancelled()) == [job] and not Job.objects.failed().exists()
    again = cancel(job.pk)
    assert (again.outcome, again.changed) == (ENDED, False)
    assert "had already been cancelled: nothing changed" in str(again)


def test_a_running_job_is_marked_and_told_once():
    job = later(jobs.record, ["x"])
    claimed = claim(job)
    result = cancel(job.pk, by="bob")
    assert (result.outcome, result.changed, result.status) == (STOPPING, True, "running")
    assert get_storage().cancel_requested([job.pk, job.pk + 1000]) == {job.pk}
    assert fresh(job).cancel_requested and job.last_error == "Cancelled by bob while running"
    again = cancel(job.pk)
    assert (again.outcome, again.changed) == (STOPPING, False)
    assert claimed.token  # still its worker's


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_a_finished_job_says_so_and_nothing_changes(state):
    job = later(jobs.record, ["x"])
    if state == "succeeded":
        Job.objects.filter(pk=job.pk).update(finished_at=timezone.now())
    else:
        Job.objects.filter(pk=job.pk).update(failed_at=timezone.now(), last_error="E")
    result = cancel(job.pk)
    assert (result.outcome, result.changed) == (ENDED, False)
    assert f"had already {state}" in str(result)
    fresh(job)
    assert job.cancelled_at is None and job.status == state


def test_bad_ids_are_clear_errors():
    with pytest.raises(JobNotFound, match="no job with id 424242"):
        cancel(424242)
    for bad in ("12", True, None, 1.5):
        with pytest.raises(TypeError, match="a job id is an int"):
            cancel(bad)
    job = later(jobs.record, ["x"])
    with pytest.raises(TypeError, match="reason must be a string"):
        cancel(job.pk, reason=3)
    assert fresh(job).status == "scheduled"


def test_job_cancel_refreshes_the_row():
    job = later(jobs.record, ["x"])
    assert job.cancel(reason="dup").cancelled
    assert job.status == "cancelled" and job.last_error == "Cancelled: dup"


# -- the statements that end a claim ------------------------------------------------------


def test_a_retry_of_a_cancelled_running_job_records_it_cancelled_instead():
    job = later(jobs.fail)
    claimed = claim(job)
    cancel(job.pk, by="ops")
    get_storage().record([errored(claimed, "ValueError: boom")], timezone.now())
    fresh(job)
    assert job.status == "cancelled" and job.run_at is None and job.locked_at is None
    assert job.last_error.startswith("Cancelled by ops while running\nThe attempt ended before")
    assert job.last_error.endswith("ValueError: boom")


def test_a_failure_is_kept_as_cancelled_even_where_failed_jobs_are_deleted():
    workers = [{"QUEUE": "*", "DELETE_FAILED_JOBS": True, "MAX_ATTEMPTS": 1}]
    with override_settings(JOBS={**settings.JOBS, "WORKERS": workers}):
        kept, gone = later(jobs.fail), later(jobs.fail)
        claimed = get_storage().claim("w", None, 10, timezone.now())
        cancel(kept.pk)
        outcomes = [errored(c, "boom") for c in claimed]
        assert get_storage().record(outcomes, timezone.now()) == 2
    assert fresh(kept).status == "cancelled"
    assert not Job.objects.filter(pk=gone.pk).exists()


def test_a_success_before_the_worker_learned_of_the_cancellation_stays_a_success():
    workers = [{"QUEUE": "*", "DELETE_SUCCESSFUL_JOBS": False}]
    with override_settings(JOBS={**settings.JOBS, "WORKERS": workers}):
        job = later(jobs.record, ["x"])
        claimed = claim(job)
        cancel(job.pk)
        get_storage().record([Outcome(claimed, OUTCOME_SUCCEEDED)], timezone.now())
    fresh(job)
    assert job.status == "succeeded" and job.cancelled_at is not None


def test_a_worker_that_learned_of_it_records_the_job_cancelled_and_keeps_it():
    job = later(jobs.record, ["x"])
    claimed = claim(job)
    cancel(job.pk)
    outcome = Outcome(claimed, OUTCOME_CANCELLED, error="\nIt stopped 0.2 s after.")
    assert get_storage().record([outcome], timezone.now()) == 1
    fresh(job)
    assert job.status == "cancelled" and job.last_error.endswith("It stopped 0.2 s after.")


def test_a_cancelled_job_given_back_or_recovered_ends_cancelled_not_ready():
    given, recovered = later(jobs.record, ["a"]), later(jobs.record, ["b"])
    claimed, _ = get_storage().claim("w", None, 10, timezone.now())
    Job.objects.filter(pk=recovered.pk).update(started_at=timezone.now())
    cancel(given.pk)
    cancel(recovered.pk)
    assert get_storage().release([claimed], timezone.now()) == 1
    assert fresh(given).status == "cancelled" and given.attempts == 0
    assert recover_worker_jobs("w", "killed") == 1
    assert fresh(recovered).status == "cancelled" and "died while running" in recovered.last_error
    assert run_jobs().attempts == 0


def test_a_cancelled_job_retried_runs_again():
    from django_jobs.operations import retry_jobs

    job = later(jobs.record, ["again"])
    cancel(job.pk)
    assert retry_jobs(Job.objects.filter(pk=job.pk)) == 1
    assert fresh(job).status == "scheduled" and job.cancelled_at is None
    run_jobs()
    assert Execution.objects.filter(key="again").exists()


# -- pausing ------------------------------------------------------------------------------


def test_pause_and_resume_a_queue():
    row = pause("email", by="ops", reason="SMTP down")
    assert (row.queue, row.paused_by, row.reason) == ("email", "ops", "SMTP down")
    assert pause("email", by="other").paused_by == "ops"  # already paused: kept as it was
    assert list(paused_queues()) == ["email"]
    assert get_storage().paused_queues() == frozenset({"email"})
    assert resume("email") is True
    assert resume("email") is False
    assert not QueuePause.objects.exists()


def test_bad_queues_are_clear_errors_and_store_nothing():
    with pytest.raises(UnknownQueue, match="did you mean 'email'"):
        pause("emial")
    with pytest.raises(UnknownQueue):
        resume("nope")
    with pytest.raises(TypeError):
        pause(None)
    with pytest.raises(ValueError, match="longer than 255"):
        pause("email", reason="x" * 256)
    assert not QueuePause.objects.exists()


def test_a_paused_queue_outside_the_settings_can_still_be_resumed():
    QueuePause.objects.create(queue="retired", paused_at=timezone.now())
    assert resume("retired") is True


def test_claims_leave_paused_queues_out_and_enqueues_go_on():
    pause("email")
    email = later(jobs.send_email, ["a@example.com"])
    other = later(jobs.record, ["x"])
    storage = get_storage()
    paused = storage.paused_queues()
    assert claim_filter(None, paused) == (None, ("email",))
    assert claim_filter(("email", "default"), paused) == (("default",), ())
    assert claim_filter(("email",), paused) is None
    now = timezone.now()
    assert not storage.has_ready(("email",), now, ("email",))
    assert storage.has_ready(None, now, ("email",))
    claimed = storage.claim("w", None, 10, now, ("email",))
    assert [c.id for c in claimed] == [other.pk]
    assert fresh(email).status == "scheduled"


def test_run_jobs_leaves_a_paused_queue_alone_until_it_is_resumed():
    later(jobs.send_email, ["a@example.com"])
    later(jobs.record, ["x"])
    pause("email")
    assert run_jobs().succeeded == 1
    assert run_jobs(queue="email").attempts == 0
    resume("email")
    assert run_jobs().succeeded == 1


def test_the_claim_that_leaves_paused_queues_out_is_still_served_by_the_claim_index():
    from django.db import connection

    from tests.unit.test_claim_index import fill_table

    fill_table(ready=5000)
    sql, params = get_storage().ready_select(None, 10, timezone.now(), exclude=("email",))
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        text = "\n".join(" ".join(str(c) for c in r) for r in cursor.fetchall())
    assert (
        "django_jobs_claim_my_idx" if connection.vendor == "mysql" else "django_jobs_claim_idx"
    ) in text
    assert "filesort" not in text.lower() and "TEMP B-TREE" not in text.upper(), text


# -- commands, status, checks ---------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("jobs", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_commands_cancel_pause_and_resume():
    waiting = later(jobs.record, ["x"])
    text = run("cancel", str(waiting.pk), "--reason", "duplicate")
    assert f"Job {waiting.pk} (tests.testapp.jobs.record) cancelled" in text
    assert fresh(waiting).last_error.endswith(": duplicate")
    assert "(manage.py jobs)" in waiting.last_error
    assert "had already been cancelled" in run("cancel", str(waiting.pk))
    with pytest.raises(CommandError, match="no job with id 999999"):
        run("cancel", str(waiting.pk), "999999")
    assert "Queue email is paused" in run("pause", "email", "--reason", "SMTP down")
    status = render_status()
    assert "CANCELLED" in status and "PAUSED" in status
    assert "email paused 0s ago by" in status and ": SMTP down" in status
    assert "Queue email is resumed" in run("resume", "email")
    assert "was not paused" in run("resume", "email")
    with pytest.raises(CommandError, match="not in settings.JOBS"):
        run("pause", "emial")


@pytest.mark.parametrize("value", [-1, "5", float("nan"), 10**9, timedelta(seconds=-1)])
def test_e110_a_bad_cancel_grace(value):
    with override_settings(JOBS={**settings.JOBS, "CANCEL_GRACE": value}):
        messages = run_checks(tags=[checks.TAG])
        assert [m.id for m in messages] == ["django_jobs.E110"], messages
        assert jobs_settings().cancel_grace == 5.0  # the default applies meanwhile


@pytest.mark.parametrize(("value", "grace"), [(0, 0.0), (2.5, 2.5), (timedelta(seconds=3), 3.0)])
def test_cancel_grace_values(value, grace):
    with override_settings(JOBS={**settings.JOBS, "CANCEL_GRACE": value}):
        assert run_checks(tags=[checks.TAG]) == []
        assert jobs_settings().cancel_grace == grace
