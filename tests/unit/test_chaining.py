"""Chains (``after=``) and batches against the real database, run in this process."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.utils import timezone

from django_jobs import (
    BatchClosed,
    DependencyError,
    DependencyNotFound,
    cancel,
    later,
    later_many,
    open_batch,
)
from django_jobs.models import Batch, Job, JobLink
from django_jobs.storage import get_storage
from django_jobs.testing import run_jobs
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def keys() -> list[str]:
    return list(Execution.objects.order_by("id").values_list("key", flat=True))


def fresh(job: Job) -> Job:
    job.refresh_from_db()
    return job


# -- chains ---------------------------------------------------------------------------


def test_a_job_after_another_waits_unclaimable_then_runs_after_it():
    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"])
        b = later(jobs.record_or_fail, ["b"], after=a)
        c = jobs.record_or_fail.using(after=[a, b]).enqueue("c")
    assert b.run_at is None and b.waiting_for == 1 and c.waiting_for == 2
    assert fresh(b).waits_for_jobs and set(Job.objects.waiting()) == {b, c}
    assert list(Job.objects.ready()) == [a]
    assert run_jobs().succeeded == 3
    assert keys() == ["a", "b", "c"]


def test_chain_runs_in_order_with_run_jobs():
    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"])
        b = later(jobs.record_or_fail, ["b"], after=a)
        later(jobs.record_or_fail, ["c"], after=b)
    result = run_jobs()
    assert result.succeeded == 3 and keys() == ["a", "b", "c"]
    assert not JobLink.objects.filter(outcome__isnull=True).exists()


def test_a_failure_records_every_dependant_as_never_run_transitively():
    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"], {"fail": True})
        b = later(jobs.record_or_fail, ["b"], after=a)
        c = later(jobs.record_or_fail, ["c"], after=b)
        d = later(jobs.record_or_fail, ["d"])
        e = later(jobs.record_or_fail, ["e"], after=[d, c])
    run_jobs()
    assert keys() == ["d"]
    assert fresh(a).status == "failed"
    for job in (b, c, e):
        assert fresh(job).status == "cancelled" and job.run_at is None
    assert b.last_error.startswith(f"Never run: job {a.pk} failed: RuntimeError: a failed")
    assert f"job {b.pk} was cancelled: never ran (job {a.pk} failed" in c.last_error
    assert f"job {c.pk} was cancelled" in e.last_error


def test_cancelling_a_prerequisite_records_its_dependants_never_run():
    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"], wait=60)
        b = later(jobs.record_or_fail, ["b"], after=a)
    assert cancel(a.pk, by="ops").cancelled
    assert fresh(b).status == "cancelled"
    assert b.last_error == f"Never run: job {a.pk} was cancelled: Cancelled by ops"
    assert run_jobs().rounds == 0


def test_cancelling_the_dependant_leaves_the_prerequisite_running_alone():
    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"])
        b = later(jobs.record_or_fail, ["b"], after=a)
    assert cancel(b.pk).cancelled
    run_jobs()
    assert keys() == ["a"] and fresh(b).status == "cancelled"


def test_after_a_job_that_already_ended():
    done = later(jobs.record_or_fail, ["done"])
    failed = later(jobs.record_or_fail, ["x"], {"fail": True})
    # A success whose row is kept (DELETE_SUCCESSFUL_JOBS off).
    Job.objects.filter(pk=done.pk).update(finished_at=timezone.now(), run_at=None)
    run_jobs()
    assert fresh(failed).status == "failed"
    ready = later(jobs.record_or_fail, ["after-done"], after=done)
    assert ready.run_at is not None and ready.waiting_for is None
    never = later(jobs.record_or_fail, ["after-failed"], after=[done, failed])
    assert never.status == "cancelled" and f"job {failed.pk} failed" in never.last_error
    run_jobs()
    assert keys() == ["after-done"]


def test_bad_after_is_refused_at_the_call_with_nothing_stored():
    a = later(jobs.record_or_fail, ["a"], wait=60)
    before = Job.objects.count()
    with pytest.raises(DependencyNotFound, match="no job 999999"):
        later(jobs.record_or_fail, ["b"], after=[a, 999999])
    with pytest.raises(TypeError, match="after= takes"):
        later(jobs.record_or_fail, ["b"], after="12")
    with pytest.raises(TypeError, match="after= takes"):
        later(jobs.record_or_fail, ["b"], after=[True])
    with pytest.raises(ValueError, match="not a job id"):
        later(jobs.record_or_fail, ["b"], after=0)
    other = Job(pk=a.pk)
    other._state.db = "other"
    with pytest.raises(DependencyError, match="read from database 'other'"):
        later(jobs.record_or_fail, ["b"], after=other)
    with pytest.raises(ValueError, match="cannot be combined"):
        later(jobs.record_or_fail, ["b"], after=a, wait=5)
    assert Job.objects.count() == before and not JobLink.objects.exists()
    assert not Job.objects.filter(pk=a.pk, follow_up=True).exists()


def test_a_rolled_back_transaction_stores_no_job_link_or_flag():
    a = later(jobs.record_or_fail, ["a"], wait=60)
    with pytest.raises(RuntimeError), transaction.atomic():
        later(jobs.record_or_fail, ["b"], after=a)
        raise RuntimeError("roll back")
    assert Job.objects.count() == 1 and not JobLink.objects.exists()
    assert fresh(a).follow_up is None


def test_later_many_after_and_run_now_leaves_waiting_jobs_alone():
    from django_jobs.operations import run_now

    a = later(jobs.record_or_fail, ["a"], wait=60)
    many = later_many(jobs.record_or_fail, [["m1"], ["m2"]], after=a)
    assert all(job.waiting_for == 1 for job in many)
    run_now(Job.objects.all())
    assert run_jobs().succeeded == 3 and keys() == ["a", "m1", "m2"]


def test_a_dependant_added_while_its_prerequisite_runs_is_honoured():
    """The flag is read by the outcome statement, not at claim time."""
    from django_jobs.storage import OUTCOME_SUCCEEDED, Outcome

    a = later(jobs.record_or_fail, ["a"])
    storage = get_storage()
    [claimed] = storage.claim("w", None, 10, timezone.now())
    b = later(jobs.record_or_fail, ["b"], after=a)
    assert storage.record([Outcome(claimed, OUTCOME_SUCCEEDED)], timezone.now()) == 1
    assert not Job.objects.filter(pk=a.pk).exists()
    assert fresh(b).run_at is not None and b.waiting_for == 0
    assert JobLink.objects.get(job_id=b.pk).outcome == "succeeded"


def test_a_lost_claim_with_follow_ups_changes_nothing():
    from django_jobs.storage import OUTCOME_SUCCEEDED, Outcome

    a = later(jobs.record_or_fail, ["a"])
    storage = get_storage()
    [claimed] = storage.claim("w", None, 10, timezone.now())
    b = later(jobs.record_or_fail, ["b"], after=a)
    claimed.token += 1  # another claim's token: this writer lost the row
    assert storage.record([Outcome(claimed, OUTCOME_SUCCEEDED)], timezone.now()) == 0
    assert Job.objects.filter(pk=a.pk).exists() and fresh(b).run_at is None


# -- batches --------------------------------------------------------------------------


def test_a_batch_runs_its_callbacks_once_after_every_member():
    batch = open_batch(
        on_success=(jobs.batch_done, ["ok"]), on_finish=(jobs.batch_done, ["fin"]),
        description="two calls",
    )  # fmt: skip
    later(jobs.record_or_fail, ["m1"], batch=batch)
    run_jobs()
    assert keys() == ["m1"]  # open: the callbacks wait
    later_many(jobs.record_or_fail, [["m2"], ["m3"]], batch=batch)
    batch.close()
    run_jobs()
    assert sorted(keys()) == sorted(
        ["m1", "m2", "m3", f"ok:{batch.pk}:3:3:0", f"fin:{batch.pk}:3:3:0"]
    )
    batch.refresh_from_db()
    assert batch.progress() == {"total": 3, "succeeded": 3, "failed": 0, "pending": 0}
    assert len(batch.member_ids("succeeded")) == 3 and batch.member_ids("failed") == []
    with pytest.raises(BatchClosed):
        later(jobs.record_or_fail, ["late"], batch=batch)
    batch.close()  # again: nothing changes
    assert run_jobs().rounds == 0


def test_a_failed_member_skips_on_success_and_on_finish_is_told():
    with open_batch(on_success=(jobs.batch_done, ["ok"]),
                    on_finish=(jobs.batch_done, ["fin"])) as batch:  # fmt: skip
        bad = later(jobs.record_or_fail, ["bad"], {"fail": True}, batch=batch)
        later(jobs.record_or_fail, ["good"], batch=batch)
    run_jobs()
    assert sorted(keys()) == sorted(["good", f"fin:{batch.pk}:2:1:1"])
    success = Job.objects.get(pk=batch.on_success_id)
    assert success.status == "cancelled"
    assert f"job {bad.pk} failed" in success.last_error
    assert batch.member_ids("failed") == [bad.pk]


def test_an_empty_batch_runs_its_callback_on_close():
    with open_batch(on_finish=(jobs.batch_done, ["empty"])) as batch:
        pass
    run_jobs()
    assert keys() == [f"empty:{batch.pk}:0:0:0"]


def test_batch_bad_input():
    with pytest.raises(ValueError, match="needs on_success"):
        open_batch()
    with pytest.raises(TypeError):
        open_batch(on_success=(jobs.batch_done,))
    with pytest.raises(TypeError, match="batch"):
        open_batch(on_success=(jobs.batch_done, ["x"], {"batch": 1}))
    with pytest.raises(TypeError):
        open_batch(on_success=jobs.record_or_fail)  # takes no 'batch' argument
    assert not Batch.objects.exists() and not Job.objects.exists()
    with pytest.raises(TypeError, match="batch= takes"):
        later(jobs.record_or_fail, ["x"], batch=3)


def test_a_member_that_waits_for_its_own_callback_is_a_cycle():
    batch = open_batch(on_finish=(jobs.batch_done, ["c"]))
    callback = Job.objects.get(pk=batch.on_finish_id)
    after_callback = later(jobs.record_or_fail, ["x"], after=callback)
    before = Job.objects.count()
    for prerequisite in (callback, after_callback):
        with pytest.raises(DependencyError, match="a cycle"):
            later(jobs.record_or_fail, ["m"], after=prerequisite, batch=batch)
    assert Job.objects.count() == before


def test_a_chain_inside_a_batch():
    with transaction.atomic(), open_batch(on_finish=(jobs.batch_done, ["fin"])) as batch:
        a = later(jobs.record_or_fail, ["a"], {"fail": True}, batch=batch)
        later(jobs.record_or_fail, ["b"], after=a, batch=batch)
        later(jobs.record_or_fail, ["c"], batch=batch)
    run_jobs()
    assert sorted(keys()) == sorted(["c", f"fin:{batch.pk}:3:1:2"])


def test_pruning_deletes_edges_and_batches_once_their_jobs_are_gone():
    from django_jobs.pruning import prune

    with open_batch(on_finish=(jobs.batch_done, ["p"])) as batch:
        a = later(jobs.record_or_fail, ["a"], batch=batch)
    later(jobs.record_or_fail, ["b"], after=a)
    assert prune(dry_run=True).counts["flows"] == 0
    run_jobs()  # successes are deleted: every job is gone
    report = prune()
    assert report.counts["flows"] == 3  # two edges and the batch
    assert not JobLink.objects.exists() and not Batch.objects.exists()
    assert "chain and batch records" in report.summary()


def test_the_follow_on_lookups_are_served_by_indexes():
    from django.db import connection

    a = later(jobs.record_or_fail, ["a"], wait=60)
    later_many(jobs.record_or_fail, [[f"b{i}"] for i in range(200)], after=a)
    queries = {
        "django_jobs_link_after_idx": JobLink.objects.filter(after_id=a.pk, outcome__isnull=True),
        "django_jobs_link_uniq": JobLink.objects.filter(job_id=a.pk + 1),
    }
    for index, queryset in queries.items():
        sql, params = queryset.values_list("id").query.sql_with_params()
        prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql, params)
            plan = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
        served = {
            "sqlite": "SEARCH django_jobs_joblink USING",  # the unique one is an autoindex
            "postgresql": "Index",  # a tiny table may get a bitmap scan of the same index
            "mysql": index,
        }[connection.vendor]
        assert served in plan, plan


def test_a_limited_job_that_waits_for_others_is_not_made_due_by_its_limit():
    """The end of another job with the same concurrency key frees a slot, but a job of
    that key waiting for its prerequisites stays waiting: only they make it due."""
    from tests.testapp import limit_jobs

    with transaction.atomic():
        a = later(jobs.record_or_fail, ["a"], wait=60)
        waiting = later(limit_jobs.per_customer, ["c1"], after=a)
        other = later(limit_jobs.per_customer, ["c1"])
    assert not fresh(waiting).blocked and waiting.waits_for_jobs
    assert list(Job.objects.blocked()) == []
    run_jobs()  # `other` runs and ends, freeing c1's slot
    assert not Job.objects.filter(pk=other.pk).exists()
    assert fresh(waiting).run_at is None and waiting.waits_for_jobs
