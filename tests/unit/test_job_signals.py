"""django_jobs.signals and per-job hooks in-process, on every engine: what record() and
release() report, enqueue on commit, recovery's signal, run_jobs, hook checks.
(The process proof with a real worker is tests/processes/test_job_signals.py.)"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import transaction

from django_jobs import clock, job, later, later_many, signals
from django_jobs.exceptions import WorkerLost
from django_jobs.models import Job
from django_jobs.runtime.lifeline import recover_worker_jobs
from django_jobs.storage import OUTCOME_RETRY, OUTCOME_SUCCEEDED, Outcome, get_storage, rows
from django_jobs.testing import run_jobs
from tests.testapp import jobs


@pytest.fixture
def heard():
    """Every signal sent in this process: a list of (signal name, sender, kwargs)."""
    got: list[tuple[str, object, dict]] = []
    receivers = {}
    for name in ("job_enqueued", "job_started", "job_succeeded", "job_retrying",
                 "job_snoozed", "job_failed", "job_cancelled"):  # fmt: skip

        def receive(sender, signal, _name=name, **kwargs):
            got.append((_name, sender, kwargs))

        receivers[name] = receive
        getattr(signals, name).connect(receive)
    yield got
    for name, receive in receivers.items():
        getattr(signals, name).disconnect(receive)


def names(got) -> list[str]:
    return [name for name, _, _ in got]


def test_outcome_kind_names_match_the_storage():
    assert (signals._SUCCEEDED, signals._RETRY, signals._FAILED) == (
        rows.OUTCOME_SUCCEEDED, rows.OUTCOME_RETRY, rows.OUTCOME_FAILED,
    )  # fmt: skip
    assert (signals._SNOOZE, signals._CANCELLED) == (rows.OUTCOME_SNOOZE, rows.OUTCOME_CANCELLED)


@pytest.mark.django_db(transaction=True)
def test_later_many_sends_one_job_enqueued_per_job_on_commit_and_none_on_rollback(heard):
    later_many(jobs.record, [["a"], ["b"], ["c"]])
    assert names(heard) == ["job_enqueued"] * 3
    assert [kw["job"].args for _, _, kw in heard] == [["a"], ["b"], ["c"]]
    assert heard[0][1] is jobs.record and heard[0][2]["job"].attempt == 0
    heard.clear()
    with transaction.atomic():
        later(jobs.record, ["d"])
        assert heard == []  # not before the commit
    assert names(heard) == ["job_enqueued"]
    heard.clear()
    with pytest.raises(RuntimeError), transaction.atomic():
        later(jobs.record, ["e"])
        raise RuntimeError
    assert heard == []


@pytest.mark.django_db(transaction=True)
def test_record_reports_only_what_it_wrote(heard):
    storage = get_storage()
    later_many(jobs.record, [["won"], ["lost"]])
    heard.clear()
    won, lost = storage.claim("w", None, 2, clock.now())
    stale = rows.ClaimedJob(**{**_fields(lost), "token": lost.token + 1})
    outcomes = [Outcome(won, OUTCOME_SUCCEEDED), Outcome(stale, OUTCOME_SUCCEEDED)]
    assert signals.record(storage, outcomes, clock.now()) == 1
    assert [o.ended for o in outcomes] == [OUTCOME_SUCCEEDED, ""]
    assert names(heard) == ["job_succeeded"]
    assert heard[0][2]["job"].id == won.id


@pytest.mark.django_db(transaction=True)
def test_a_retry_of_a_row_whose_cancellation_was_asked_for_is_reported_cancelled(heard):
    storage = get_storage()
    later_many(jobs.fail, [["x"], ["y"]])
    heard.clear()
    marked, plain = storage.claim("w", None, 2, clock.now())
    assert storage.request_cancel(marked.id, "Cancelled while running", clock.now())
    later_time = clock.now() + dt.timedelta(seconds=60)
    outcomes = [
        Outcome(job, OUTCOME_RETRY, error="ValueError: x", run_at=later_time)
        for job in (marked, plain)
    ]
    outcomes[0].exception = outcomes[1].exception = ValueError("x")
    signals.record(storage, outcomes, clock.now())
    assert [(name, kw["job"].id) for name, _, kw in heard] == [
        ("job_cancelled", marked.id),
        ("job_retrying", plain.id),
    ]
    assert heard[1][2]["run_at"] == later_time
    assert isinstance(heard[1][2]["exception"], ValueError)
    assert Job.objects.get(pk=marked.id).status == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_release_reports_the_rows_it_ended_cancelled(heard):
    storage = get_storage()
    later_many(jobs.record, [["x"], ["y"]])
    heard.clear()
    marked, plain = storage.claim("w", None, 2, clock.now())
    storage.request_cancel(marked.id, "Cancelled", clock.now())
    assert signals.release(storage, [marked, plain], clock.now()) == 2
    assert [(name, kw["job"].id, kw["duration"]) for name, _, kw in heard] == [
        ("job_cancelled", marked.id, None)
    ]
    # Released again with its old token: nothing changes, nothing is reported.
    heard.clear()
    assert signals.release(storage, [marked], clock.now()) == 0
    assert heard == []


@pytest.mark.django_db(transaction=True)
def test_recovery_of_a_dead_workers_job_sends_job_retrying_with_worker_lost(heard):
    storage = get_storage()
    later(jobs.record, ["x"])
    (claimed,) = storage.claim("gone-worker", None, 1, clock.now())
    storage.mark_started([rows.StartMark(claimed, clock.now(), None)], clock.now())
    heard.clear()
    assert recover_worker_jobs("gone-worker") == 1
    ((name, sender, kw),) = heard
    assert name == "job_retrying" and sender is jobs.record
    assert isinstance(kw["exception"], WorkerLost)
    assert kw["job"].attempt == 1 and kw["duration"] is not None


@pytest.mark.django_db(transaction=True)
def test_run_jobs_sends_the_signals_and_runs_the_hooks(heard):
    calls = []

    @job(
        name="tests.signals.hooked",
        max_attempts=2,
        before_perform=lambda job: calls.append(("before", job.attempt)),
        after_perform=lambda job: calls.append(("after", job.attempt)),
        on_success=lambda job, result: calls.append(("success", result)),
        on_failure=lambda job, exception: calls.append(("failure", str(exception))),
    )
    def hooked(fail: bool):
        if fail:
            raise ValueError("no")
        return "yes"

    hooked.enqueue(False)
    hooked.enqueue(True)
    run_jobs()
    assert calls == [
        ("before", 1), ("after", 1), ("success", "yes"),
        ("before", 1), ("after", 1), ("failure", "no"),
    ]  # fmt: skip
    assert names(heard) == [
        "job_enqueued", "job_enqueued",
        "job_started", "job_succeeded", "job_started", "job_retrying",
    ]  # fmt: skip
    assert heard[3][2]["result"] == "yes" and heard[3][2]["duration"] >= 0


@pytest.mark.django_db(transaction=True)
def test_a_raising_receiver_is_logged_and_changes_nothing(caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    signals.job_succeeded.connect(broken, sender=jobs.record)
    try:
        later(jobs.record, ["fine"])
        result = run_jobs()
    finally:
        signals.job_succeeded.disconnect(broken, sender=jobs.record)
    assert result.succeeded == 1 and not Job.objects.exists()
    (record,) = [r for r in caplog.records if r.name == "django_jobs.signals"]
    assert "receiver" in record.getMessage() and "job_succeeded raised RuntimeError" in (
        record.getMessage()
    )
    assert record.exc_info[0] is RuntimeError


def _fields(claimed: rows.ClaimedJob) -> dict:
    return {name: getattr(claimed, name) for name in rows.ClaimedJob.__slots__}


# -- hooks are checked when the job is declared -------------------------------------------


def test_a_hook_that_is_not_callable_is_refused():
    with pytest.raises(TypeError, match=r"@job .*: on_failure must be a function taking "
                                        r"\(job, exception\), not 'oops'"):  # fmt: skip
        job(name="tests.signals.bad1", on_failure="oops")(lambda: None)


def test_a_hook_that_cannot_take_its_arguments_is_refused():
    def on_success(job):  # forgot result
        pass

    with pytest.raises(TypeError, match=r"on_success is called with \(job, result\)"):
        job(name="tests.signals.bad2", on_success=on_success)(lambda: None)


def test_an_async_hook_on_a_sync_job_is_refused_and_allowed_on_an_async_one():
    async def before(job):
        pass

    with pytest.raises(TypeError, match="before_perform is an async function"):
        job(name="tests.signals.bad3", before_perform=before)(lambda: None)

    async def work():
        pass

    assert job(name="tests.signals.ok", before_perform=before)(work).hooks.before_perform is before


def test_a_job_without_hooks_carries_none():
    assert jobs.record.hooks is None
