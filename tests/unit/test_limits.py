"""Concurrency limits, statement by statement, on every engine: the slot a claim takes,
the rows it parks, the end of a claim that frees a slot, recovery, and bad input."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_jobs import job, later, later_many
from django_jobs.conf import jobs_settings
from django_jobs.models import Job, JobStatus, LimitLock
from django_jobs.models import Worker as WorkerRow
from django_jobs.runtime.lifeline import recover
from django_jobs.storage import OUTCOME_SUCCEEDED, Outcome, get_storage
from django_jobs.testing import run_jobs
from tests.settings import JOBS as TEST_JOBS
from tests.testapp import jobs, limit_jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def claim(storage, limit=100, worker="w"):
    return storage.claim(worker, None, limit, timezone.now())


def test_a_call_stores_its_key_and_limit():
    row = later(limit_jobs.per_customer, ["c-7", 1])
    stored = Job.objects.get(pk=row.pk)
    assert stored.concurrency_key == f"{limit_jobs.per_customer.name}:c-7" == row.concurrency_key
    assert stored.concurrency_limit == 1
    # Without a key callable, one key for the job.
    other = Job.objects.get(pk=later(limit_jobs.one_at_a_time, ["x"]).pk)
    assert other.concurrency_key == limit_jobs.one_at_a_time.name
    # later_many and a plain job alongside.
    rows = later_many(limit_jobs.two_per_customer, [["a"], ["b", 2]])
    assert [r.concurrency_key for r in Job.objects.filter(pk__in=[r.pk for r in rows])] == [
        f"{limit_jobs.two_per_customer.name}:a",
        f"{limit_jobs.two_per_customer.name}:b",
    ]
    assert Job.objects.get(pk=later(jobs.record, ["plain"]).pk).concurrency_key is None


def test_a_claim_takes_one_slot_per_key_and_parks_the_rest(limited_storage):
    storage = limited_storage
    a = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(3)]
    b = [later(limit_jobs.per_customer, ["b", i]).pk for i in range(2)]
    plain = later(jobs.record, ["plain"]).pk
    claimed = claim(storage)
    assert sorted(j.id for j in claimed) == sorted([a[0], b[0], plain])
    parked = Job.objects.filter(pk__in=[*a[1:], *b[1:]])
    assert all(row.blocked and row.run_at is None and row.attempts == 0 for row in parked)
    assert all(row.status == JobStatus.SCHEDULED and row.last_error == "" for row in parked)
    assert set(Job.objects.blocked().values_list("pk", flat=True)) == {*a[1:], *b[1:]}
    assert parked[0].waiting_reason == (
        f"concurrency limit 1 for key {limit_jobs.per_customer.name}:a"
    )
    # Parked rows are out of every claim: nothing is ready, nothing comes due.
    assert claim(storage) == []
    assert not storage.has_ready(None, timezone.now())
    assert storage.next_due(None, timezone.now()) is None
    assert LimitLock.objects.count() == 2


def test_the_end_of_a_claim_frees_its_slot_for_the_oldest_waiting_row(limited_storage):
    storage = limited_storage
    a = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(3)]
    [first] = claim(storage)
    assert get_storage().record([Outcome(first, OUTCOME_SUCCEEDED)], timezone.now()) == 1
    rows = {row.pk: row for row in Job.objects.filter(pk__in=a[1:])}
    assert not rows[a[1]].blocked and rows[a[1]].run_at is not None
    assert rows[a[2]].blocked
    [second] = claim(storage)
    assert second.id == a[1] and second.attempts == 1


def test_a_limit_of_two_lets_two_run(limited_storage):
    storage = limited_storage
    rows = [later(limit_jobs.two_per_customer, ["a", i]).pk for i in range(5)]
    assert sorted(j.id for j in claim(storage)) == rows[:2]
    assert Job.objects.blocked().count() == 3


def test_give_back_frees_the_slot(limited_storage):
    storage = limited_storage
    a = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(2)]
    [first] = claim(storage)
    claim(storage)  # parks the second
    assert storage.release([first], timezone.now()) == 1
    # Both are ready again: the given-back one (unspent) and the un-parked one.
    assert set(Job.objects.ready().values_list("pk", flat=True)) == set(a)
    assert Job.objects.get(pk=a[0]).attempts == 0


def test_a_waiting_limited_job_does_not_hold_back_the_jobs_behind_it(limited_storage):
    storage = limited_storage
    [holder, waiting] = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(2)]
    behind = later(jobs.record, ["behind"]).pk
    assert [j.id for j in claim(storage, limit=1)] == [holder]
    # One claim of one row: the limited row at the head is parked and the next one taken.
    assert [j.id for j in claim(storage, limit=1)] == [behind]
    assert Job.objects.get(pk=waiting).blocked


def test_recovery_of_a_dead_workers_claim_frees_its_slot(limited_storage):
    storage = limited_storage
    a = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(2)]
    claim(storage, worker="dead-worker")
    claim(storage)
    assert Job.objects.get(pk=a[1]).blocked
    old = timezone.now() - timedelta(seconds=TEST_JOBS["HEARTBEAT_TIMEOUT"] * 2)
    Job.objects.filter(pk=a[0]).update(locked_at=old)
    WorkerRow.objects.create(identity="dead-worker", host="h", pid=1, heartbeat_at=old)
    assert recover() == 1
    assert not Job.objects.get(pk=a[1]).blocked
    assert sorted(j.id for j in claim(storage)) == [a[0]]  # unspent, first in claim order


def test_a_holder_deleted_by_hand_is_caught_by_recoverys_pass(limited_storage):
    storage = limited_storage
    a = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(2)]
    claim(storage)
    claim(storage)
    Job.objects.filter(pk=a[0]).delete()
    assert Job.objects.get(pk=a[1]).blocked
    recover()
    assert not Job.objects.get(pk=a[1]).blocked


def test_a_stale_writer_frees_nothing_it_does_not_hold(limited_storage):
    storage = limited_storage
    a = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(2)]
    [first] = claim(storage)
    claim(storage)
    stale = type(first)(**{**{f: getattr(first, f) for f in first.__slots__}, "token": 1})
    assert storage.record([Outcome(stale, OUTCOME_SUCCEEDED)], timezone.now()) == 0
    assert Job.objects.get(pk=a[1]).blocked  # the real holder still runs


def test_the_plain_claim_gives_limited_rows_back_and_counts_slots_from_then_on():
    storage = get_storage()
    storage.limited = False
    try:
        a = [later(limit_jobs.per_customer, ["a", i]).pk for i in range(2)]
        plain = later(jobs.record, ["plain"]).pk
        claimed = storage.claim("w", None, 10, timezone.now())
        assert sorted(j.id for j in claimed) == sorted([a[0], plain])
        assert storage.limited
        assert Job.objects.get(pk=a[1]).blocked and Job.objects.get(pk=a[0]).attempts == 1
    finally:
        storage.limited = False


def test_run_jobs_runs_every_limited_job():
    later_many(limit_jobs.per_customer, [["a", i] for i in range(3)] + [["b", 0]])
    result = run_jobs()
    assert result.succeeded == 4 and not Job.objects.exists()
    assert Execution.objects.count() == 4


def test_a_queue_concurrency_limits_its_jobs(limited_storage):
    storage = limited_storage
    workers = [{**TEST_JOBS["WORKERS"][0], "QUEUE": ["email"], "CONCURRENCY": 2}, {"QUEUE": "*"}]
    with override_settings(JOBS={**TEST_JOBS, "WORKERS": workers}):
        assert jobs_settings().policy_for("email").concurrency == 2
        rows = [later(jobs.send_email, [f"{i}@x"]).pk for i in range(3)]
        other = later(jobs.record, ["default queue"]).pk
        assert Job.objects.get(pk=rows[0]).concurrency_key == "queue:email"
        assert Job.objects.get(pk=other).concurrency_key is None
        assert sorted(j.id for j in claim(storage)) == sorted([*rows[:2], other])
        # A job with a limit of its own cannot go into a queue with CONCURRENCY.
        with pytest.raises(ValueError, match="counts against one limit"):
            later(limit_jobs.per_customer, ["a"], queue="email")
        assert Job.objects.count() == 4


@pytest.mark.parametrize("value", [0, -1, 1.5, "2", True, None])
def test_concurrency_must_be_a_positive_int(value):
    if value is None:
        with pytest.raises(TypeError, match="concurrency_key needs concurrency"):
            job(lambda customer: None, name="t.bad", concurrency_key=lambda c: c)
        return
    with pytest.raises(ValueError, match="concurrency must be an int >= 1"):
        job(lambda customer: None, name="t.bad", concurrency=value)


def test_concurrency_key_must_be_callable():
    with pytest.raises(TypeError, match="concurrency_key must be a callable"):
        job(lambda customer: None, name="t.bad", concurrency=1, concurrency_key="customer")


@pytest.mark.parametrize(
    ("returned", "error", "words"),
    [
        (None, TypeError, "must return a non-empty str or an int"),
        ("", TypeError, "must return a non-empty str or an int"),
        (1.5, TypeError, "must return a non-empty str or an int"),
        (True, TypeError, "must return a non-empty str or an int"),
        ("x" * 300, ValueError, "must fit in 255"),
        (ZeroDivisionError, ValueError, "concurrency_key of job t.keyed raised ZeroDivisionError"),
    ],
)
def test_a_bad_key_fails_the_call_and_stores_nothing(returned, error, words):
    def key(customer):
        if returned is ZeroDivisionError:
            return 1 / 0
        return returned

    keyed = job(lambda customer: None, name="t.keyed", concurrency=1, concurrency_key=key)
    with pytest.raises(error, match=words):
        later(keyed, ["c"])
    with pytest.raises(error, match=words):
        later_many(keyed, [["ok"], ["c"]])
    assert not Job.objects.exists()


def test_the_claim_of_limited_rows_locks_keys_in_order(limited_storage):
    storage = limited_storage
    # Keys are locked sorted, whatever the claim order, so claims never deadlock.
    for key in ["z", "a", "m"]:
        later(limit_jobs.per_customer, [key])
    claim(storage)
    assert list(LimitLock.objects.values_list("key", flat=True)) == sorted(
        f"{limit_jobs.per_customer.name}:{k}" for k in "amz"
    )
    assert connection.vendor in {"sqlite", "postgresql", "mysql"}


# -- system checks ------------------------------------------------------------------


def _check_ids(**jobs_overrides) -> list:
    from django.core.checks import run_checks

    from django_jobs import checks

    with override_settings(JOBS={**TEST_JOBS, **jobs_overrides}):
        return run_checks(tags=[checks.TAG])


@pytest.mark.parametrize("value", [0, 1.5, "3", True])
def test_a_bad_queue_concurrency_is_e130(value):
    [message] = _check_ids(WORKERS=[{"QUEUE": "*", "CONCURRENCY": value}])
    assert message.id == "django_jobs.E130"
    assert 'JOBS["WORKERS"][0]["CONCURRENCY"] must be a whole number of at least 1' in message.msg


def test_a_good_queue_concurrency_is_clean():
    assert _check_ids(WORKERS=[{"QUEUE": ["email"], "CONCURRENCY": 3}, {"QUEUE": "*"}]) == []
    assert _check_ids(WORKERS=[{"QUEUE": "*", "CONCURRENCY": None}]) == []


def test_a_limited_job_on_a_limited_queue_is_e131():
    # The test jobs with limits of their own are on "default".
    messages = _check_ids(WORKERS=[{"QUEUE": ["default"], "CONCURRENCY": 3}, {"QUEUE": "*"}])
    assert {m.id for m in messages} == {"django_jobs.E131"}
    assert any(m.obj == limit_jobs.per_customer.name for m in messages)
    assert "counts against one limit" in messages[0].msg


def test_jobs_status_says_which_keys_hold_jobs_back(limited_storage):
    storage = limited_storage
    from django_jobs.runtime.status import render_status

    later_many(limit_jobs.per_customer, [["c-7", n] for n in range(3)])
    assert "Waiting for a slot" not in render_status()
    claim(storage)
    text = render_status()
    assert "Waiting for a slot" in text
    assert (
        f"concurrency limit 1 for key {limit_jobs.per_customer.name}:c-7: 2 job(s) waiting" in text
    )


def test_pruning_deletes_lock_rows_of_keys_long_unused(limited_storage):
    storage = limited_storage
    from django_jobs.pruning import prune

    later(limit_jobs.per_customer, ["old"])
    claim(storage)
    LimitLock.objects.update(used_at=timezone.now() - timedelta(days=1))
    LimitLock.objects.create(key="fresh", used_at=timezone.now())
    prune()
    assert list(LimitLock.objects.values_list("key", flat=True)) == ["fresh"]
