"""Unique jobs in one process: keys, duplicates, when a key is given up, and bad input.

The concurrent proof (8 processes at a barrier) is tests/processes/test_unique_processes.py.
"""

from datetime import timedelta

import pytest
from django.db import transaction
from django.test import override_settings

from django_jobs import job, later, later_many, registry
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests.settings import JOBS as TEST_JOBS
from tests.testapp import control_jobs, jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

KEEP = {**TEST_JOBS, "WORKERS": [{"QUEUE": "*", "DELETE_SUCCESSFUL_JOBS": False}]}


def rows(name_or_job):
    name = getattr(name_or_job, "name", name_or_job)
    return list(Job.objects.filter(name=name).order_by("id"))


def test_a_duplicate_stores_nothing_and_returns_the_holder():
    first = control_jobs.unique_record.enqueue("a", note="x")
    again = control_jobs.unique_record.enqueue("a", note="x")
    assert first.created is True and again.created is False
    assert again.pk == first.pk
    assert [r.pk for r in rows(control_jobs.unique_record)] == [first.pk]
    # The holder as stored, not the refused call.
    assert again.unique_key == first.unique_key and len(first.unique_key) == 64
    assert again.args == ["a"] and again.kwargs == {"note": "x"}


def test_the_identity_is_the_bound_call():
    first = control_jobs.unique_record.enqueue("a")
    assert control_jobs.unique_record.enqueue(key="a").created is False
    assert control_jobs.unique_record.enqueue("a", note="").created is False  # the default
    assert control_jobs.unique_record.enqueue("a", note="other").created is True
    assert control_jobs.unique_record.enqueue("b").created is True
    assert len(rows(control_jobs.unique_record)) == 3
    # Another job with the same arguments has its own identity.
    assert control_jobs.unique_for_ten_minutes.enqueue("a").created is True
    assert first.created is True


def test_a_plain_job_is_created_every_time():
    first, second = jobs.noop.enqueue(), jobs.noop.enqueue()
    assert first.created is second.created is True
    assert first.unique_key is None and Job.objects.get(pk=second.pk).unique_key is None


def test_unique_key_callable_picks_the_identity():
    first = control_jobs.keyed_by_order.enqueue(7, note="first")
    again = control_jobs.keyed_by_order.enqueue(7, note="second")
    assert again.created is False and again.pk == first.pk and again.kwargs == {"note": "first"}
    assert control_jobs.keyed_by_order.enqueue(8).created is True


def test_a_key_per_call_makes_any_job_unique():
    first = jobs.record.using(unique_key="report-2026-11").enqueue("x")
    again = jobs.record.using(unique_key="report-2026-11").enqueue("y")
    assert first.created and not again.created and again.pk == first.pk
    assert jobs.record.using(unique_key="report-2026-12").enqueue("x").created is True
    assert jobs.record.enqueue("x").created is True  # without the key: a plain call
    via_later = later(jobs.record, ["z"], unique_key="report-2026-11")
    assert via_later.created is False and via_later.pk == first.pk
    assert len(rows(jobs.record)) == 3


def test_later_many_stores_each_key_once_and_keeps_plain_rows():
    existing = control_jobs.unique_record.enqueue("b")
    stored = later_many(control_jobs.unique_record, [["a"], ["b"], ["a"], ["c"]])
    assert [j.created for j in stored] == [True, False, False, True]
    assert stored[1].pk == existing.pk and stored[2].pk == stored[0].pk
    assert sorted(r.args[0] for r in rows(control_jobs.unique_record)) == ["a", "b", "c"]
    plain = later_many(jobs.noop, [[], []])
    assert [j.created for j in plain] == [True, True] and all(j.pk for j in plain)


def test_a_rolled_back_enqueue_leaves_no_key():
    with pytest.raises(RuntimeError), transaction.atomic():
        held = control_jobs.unique_record.enqueue("a")
        assert held.created is True
        raise RuntimeError("the request failed")
    assert not Job.objects.filter(unique_key=held.unique_key).exists()
    again = control_jobs.unique_record.enqueue("a")
    assert again.created is True


def test_a_rolled_back_later_many_leaves_no_key():
    with pytest.raises(RuntimeError), transaction.atomic():
        later_many(control_jobs.unique_record, [["a"], ["b"]])
        raise RuntimeError("the request failed")
    assert rows(control_jobs.unique_record) == []
    assert [j.created for j in later_many(control_jobs.unique_record, [["a"], ["b"]])] == [
        True,
        True,
    ]


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_inside_another_databases_transaction_the_outcome_is_known_at_commit():
    control_jobs.unique_record.enqueue("held")
    with transaction.atomic(using="other"):
        new = control_jobs.unique_record.enqueue("new")
        duplicate = control_jobs.unique_record.enqueue("held")
        assert new.created is None and duplicate.created is None and new.pk is None
    assert new.created is True and duplicate.created is False and new.pk and duplicate.pk


def test_success_gives_the_key_up():
    with override_settings(JOBS=KEEP):
        first = control_jobs.unique_record.enqueue("a")
        assert run_jobs().succeeded == 1
        assert Job.objects.get(pk=first.pk).unique_key is None
        assert control_jobs.unique_record.enqueue("a").created is True


def test_success_with_the_row_deleted_gives_the_key_up():
    control_jobs.unique_record.enqueue("a")
    assert run_jobs().succeeded == 1
    assert rows(control_jobs.unique_record) == []
    assert control_jobs.unique_record.enqueue("a").created is True


def test_a_retry_keeps_the_key_and_the_final_failure_gives_it_up():
    first = control_jobs.unique_failing.enqueue("a")
    run_jobs()
    row = Job.objects.get(pk=first.pk)
    assert row.attempts == 1 and row.failed_at is None and row.unique_key == first.unique_key
    assert control_jobs.unique_failing.enqueue("a").created is False
    run_jobs(include_scheduled=True)
    row.refresh_from_db()
    assert row.attempts == 3 and row.failed_at is not None and row.unique_key is None
    assert control_jobs.unique_failing.enqueue("a").created is True


def test_unique_states_can_count_finished_rows():
    with override_settings(JOBS=KEEP):
        done = control_jobs.unique_while_kept.enqueue("a")
        failed = control_jobs.unique_while_kept.enqueue("b", fail=True)
        run_jobs(include_scheduled=True)
        assert Job.objects.get(pk=done.pk).finished_at is not None
        assert Job.objects.get(pk=failed.pk).failed_at is not None
        assert control_jobs.unique_while_kept.enqueue("a").created is False
        assert control_jobs.unique_while_kept.enqueue("b", fail=True).created is False


def test_unique_for_lets_a_new_job_in_once_the_holder_is_older():
    first = control_jobs.unique_for_ten_minutes.enqueue("a")
    assert control_jobs.unique_for_ten_minutes.enqueue("a").created is False
    Job.objects.filter(pk=first.pk).update(created_at=first.created_at - timedelta(minutes=9))
    assert control_jobs.unique_for_ten_minutes.enqueue("a").created is False
    Job.objects.filter(pk=first.pk).update(created_at=first.created_at - timedelta(minutes=11))
    second = control_jobs.unique_for_ten_minutes.enqueue("a")
    assert second.created is True and second.pk != first.pk
    old = Job.objects.get(pk=first.pk)
    assert old.unique_key is None and old.failed_at is None  # still waiting, just not unique
    assert Job.objects.get(pk=second.pk).unique_key == first.unique_key
    assert control_jobs.unique_for_ten_minutes.enqueue("a").pk == second.pk


def test_the_job_runs_with_its_arguments():
    control_jobs.unique_record.enqueue("ran")
    control_jobs.unique_record.enqueue("ran")
    run_jobs()
    assert list(Execution.objects.values_list("key", flat=True)) == ["ran"]


def test_clears_unique_key_follows_the_rule():
    assert registry.clears_unique_key(control_jobs.unique_record.name, "succeeded")
    assert registry.clears_unique_key(control_jobs.unique_record.name, "cancelled")
    assert not registry.clears_unique_key(control_jobs.unique_record.name, "running")
    kept = control_jobs.unique_while_kept.name
    assert not registry.clears_unique_key(kept, "succeeded")
    assert registry.clears_unique_key(kept, "cancelled")
    assert registry.clears_unique_key("no.such.job", "failed")  # the default rule


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [0, -1, timedelta(0), timedelta(seconds=-1), "10m", float("nan"), True]
)
def test_unique_for_must_be_a_positive_duration(value):
    with pytest.raises(ValueError, match="unique_for must be a positive duration"):

        @job(name="tests.bad_unique_for", unique=True, unique_for=value)
        def bad():
            pass

    assert "tests.bad_unique_for" not in registry.all_jobs()


def test_unique_states_must_hold_the_waiting_states():
    with pytest.raises(ValueError, match="must include ready, running, scheduled"):
        job(name="tests.s1", unique=True, unique_states=["ready", "scheduled"])(lambda: None)
    with pytest.raises(ValueError, match="unknown state.*'done'"):
        job(name="tests.s2", unique=True, unique_states=["ready", "scheduled", "done"])(
            lambda: None
        )
    with pytest.raises(TypeError, match="list of states"):
        job(name="tests.s3", unique=True, unique_states="running")(lambda: None)


def test_unique_options_without_a_rule_are_refused():
    with pytest.raises(TypeError, match="need unique=True"):
        job(name="tests.u1", unique_for=60)(lambda: None)
    with pytest.raises(TypeError, match="unique_key must be a callable"):
        job(name="tests.u2", unique_key="fixed")(lambda: None)
    with pytest.raises(TypeError, match="unique must be True or False"):
        job(name="tests.u3", unique="yes")(lambda: None)


def test_a_bad_key_from_the_callable_fails_the_call_and_stores_nothing():
    @job(name="tests.list_key", unique_key=lambda items: items)
    def list_key(items):
        pass

    @job(name="tests.raising_key", unique_key=lambda user: user["id"])
    def raising_key(user):
        pass

    with pytest.raises(TypeError, match="must return a str or an int"):
        list_key.enqueue([1, 2])
    with pytest.raises(ValueError, match="unique_key of job tests.raising_key raised KeyError"):
        raising_key.enqueue({})
    assert not Job.objects.exists()


def test_a_key_callable_returning_none_makes_the_call_plain():
    @job(name="tests.optional_key", unique_key=lambda key=None: key)
    def optional_key(key=None):
        pass

    assert optional_key.enqueue().created and optional_key.enqueue().created
    assert optional_key.enqueue("k").created and not optional_key.enqueue("k").created


@pytest.mark.parametrize("value", ["", 5, ["k"]])
def test_a_per_call_key_must_be_a_non_empty_string(value):
    with pytest.raises(TypeError, match="unique_key must be a non-empty string"):
        jobs.record.using(unique_key=value)
    with pytest.raises(TypeError, match="unique_key must be a non-empty string"):
        later(jobs.record, ["x"], unique_key=value)
    assert not Job.objects.exists()


def test_cancelling_a_waiting_unique_job_gives_its_key_up():
    from django_jobs import cancel

    first = control_jobs.unique_record.enqueue("a")
    cancel(first.pk)
    row = Job.objects.get(pk=first.pk)
    assert row.cancelled_at is not None and row.unique_key is None
    again = control_jobs.unique_record.enqueue("a")
    assert again.created is True and again.pk != first.pk


def test_cancelled_is_not_a_state_a_key_can_hold_in():
    states = ["ready", "scheduled", "running", "cancelled"]
    with pytest.raises(ValueError, match="unknown state.*'cancelled'"):
        job(name="tests.s4", unique=True, unique_states=states)(lambda: None)


def test_recovery_and_timeouts_give_the_key_up_on_the_last_attempt():
    """errored() is what the lifeline and the watchdog record: it asks the rule too."""
    from django_jobs.executor import errored
    from django_jobs.storage import ClaimedJob

    def claimed(job_obj, attempts):
        return ClaimedJob(1, job_obj.name, [], {}, "default", 50, attempts, None)

    last = errored(claimed(control_jobs.unique_failing, 3), "worker w1 died")
    assert last.kind == "failed" and last.clear_unique is True
    retried = errored(claimed(control_jobs.unique_failing, 1), "worker w1 died")
    assert retried.kind == "retry" and retried.clear_unique is False
    kept = errored(claimed(control_jobs.unique_while_kept, 99), "JobTimeout: timed out")
    assert kept.kind == "failed" and kept.clear_unique is False
