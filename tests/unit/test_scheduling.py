"""later(), later_many(), .enqueue(): what is stored, and bad input that stores nothing."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_jobs import NotSerializable, UnknownQueue, later, later_many
from django_jobs.models import Job, JobStatus
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def test_later_stores_a_scheduled_row_with_the_jobs_options():
    before = timezone.now()
    row = later(jobs.send_email, ["a@example.com"], {"subject": "hi"})
    stored = Job.objects.get(pk=row.pk)
    assert (stored.name, stored.args, stored.kwargs) == (
        "tests.testapp.jobs.send_email",
        ["a@example.com"],
        {"subject": "hi"},
    )
    assert (stored.queue, stored.priority, stored.attempts) == ("email", 1, 0)
    assert before <= stored.run_at <= timezone.now()
    assert stored.status == JobStatus.SCHEDULED
    assert stored.locked_at is None and stored.failed_at is None and stored.last_error == ""


def test_wait_wait_until_and_overrides():
    now = timezone.now()
    a = later(jobs.record, ["a"], wait=300)
    b = later(jobs.record, ["b"], wait=dt.timedelta(minutes=1))
    c = later(jobs.record, ["c"], wait_until=now + dt.timedelta(days=1))
    d = later(jobs.record, args=["d"], kwargs={"sleep": 0}, queue="email", priority=5)
    rows = {r.args[0]: r for r in Job.objects.all()}
    assert 299 <= (rows["a"].run_at - now).total_seconds() <= 302
    assert 59 <= (rows["b"].run_at - now).total_seconds() <= 62
    assert rows["c"].run_at == now + dt.timedelta(days=1)
    assert (rows["d"].queue, rows["d"].priority) == ("email", 5)
    assert [a.pk, b.pk, c.pk, d.pk] == sorted(rows[k].pk for k in "abcd")


def test_enqueue_and_using_are_later_in_django_tasks_style():
    row = jobs.send_email.enqueue("x@example.com", subject="s")
    assert (row.args, row.kwargs, row.queue) == (["x@example.com"], {"subject": "s"}, "email")
    later_row = jobs.send_email.using(wait=300, priority=9).enqueue("y@example.com")
    stored = Job.objects.get(pk=later_row.pk)
    assert stored.priority == 9 and stored.run_at > timezone.now() + dt.timedelta(seconds=290)


def test_later_many_inserts_in_bulk_and_checks_every_call_first():
    rows = later_many(jobs.record, [[str(i)] for i in range(2500)])
    assert len(rows) == 2500 and all(r.pk for r in rows)
    assert Job.objects.count() == 2500
    mixed = later_many(jobs.send_email, [(["a@x"], {"subject": "1"}), ["b@x"]])
    assert [m.kwargs for m in mixed] == [{"subject": "1"}, {}]
    with pytest.raises(TypeError, match="send_email"):
        later_many(jobs.send_email, [["ok@x"], ["a", "b", "c"]])
    assert Job.objects.count() == 2502


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: later(jobs.record, [object()]), NotSerializable, "argument 0 .*object"),
        (
            lambda: later(jobs.record, ["k"], {"sleep": Decimal(1)}),
            NotSerializable,
            "'sleep'.*Decimal",
        ),
        (lambda: later(jobs.record, [float("nan")]), NotSerializable, "argument 0"),
        (lambda: later(jobs.record, []), TypeError, "tests.testapp.jobs.record"),
        (lambda: later(jobs.record, ["a"], {"nope": 1}), TypeError, "unexpected keyword"),
        (
            lambda: later(jobs.record, ["a"], wait=1, wait_until=timezone.now()),
            ValueError,
            "not both",
        ),
        (
            lambda: later(jobs.record, ["a"], wait_until=dt.datetime(2030, 1, 1)),
            ValueError,
            "naive",
        ),
        (lambda: later(jobs.record, ["a"], queue="nowhere"), UnknownQueue, "nowhere"),
        (lambda: later(print, []), TypeError, "not a job"),
        (lambda: later("no.such.job", []), LookupError, "no.such.job"),
        (lambda: later(jobs.record, "abc"), TypeError, "must be a list"),
        (lambda: later(jobs.record, ["a"], wait="soon"), TypeError, "wait"),
    ],
)
def test_bad_input_raises_at_the_call_and_stores_nothing(call, error, match):
    with pytest.raises(error, match=match):
        call()
    assert Job.objects.count() == 0


def test_enqueue_inside_a_rolled_back_transaction_leaves_no_job():
    with pytest.raises(RuntimeError), transaction.atomic():
        later(jobs.record, ["gone"])
        raise RuntimeError("roll back")
    assert Job.objects.count() == 0
    with transaction.atomic():
        later(jobs.record, ["kept"])
    assert [j.args for j in Job.objects.all()] == [["kept"]]


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_in_a_transaction_on_another_database_the_job_is_stored_on_commit():
    with transaction.atomic(using="other"):
        row = later(jobs.record, ["after-commit"])
        assert row.pk is None and Job.objects.count() == 0
    assert row.pk is not None
    assert [j.args for j in Job.objects.all()] == [["after-commit"]]
    with pytest.raises(RuntimeError), transaction.atomic(using="other"):
        later(jobs.record, ["never"])
        raise RuntimeError("roll back")
    assert Job.objects.count() == 1


@override_settings(JOBS={"QUEUES": ["default", "email", "slow"], "DATABASE": "default"})
def test_settings_changes_are_picked_up():
    later(jobs.record, ["x"], queue="slow")
    with override_settings(JOBS={"QUEUES": ["default"]}), pytest.raises(UnknownQueue):
        later(jobs.record, ["x"], queue="slow")


def test_an_unexpected_keyword_is_named_with_the_close_match():
    from django_jobs import job

    @job
    def show_page(page_id):
        pass

    with pytest.raises(TypeError) as caught:
        show_page.enqueue(page=4)
    text = str(caught.value)
    assert "unexpected keyword argument 'page' (did you mean 'page_id'?)" in text
    assert "show_page" in text and "missing" not in text
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'colour'$"):
        later_many(jobs.record, [["ok"], (["a"], {"colour": 1})])
    assert Job.objects.count() == 0


def test_keywords_pass_to_a_job_taking_var_keywords_and_context():
    from django_jobs import job

    @job(takes_context=True)
    def flexible(context, a, **rest):
        pass

    assert later(flexible, [1], {"anything": 2}).kwargs == {"anything": 2}
    # The context is given by the worker, never by the caller.
    with pytest.raises(TypeError, match="unexpected keyword argument 'context'"):
        later(jobs.with_context, [], {"context": None, "key": "k"})
    assert Job.objects.count() == 1


def test_tuples_are_stored_as_lists_and_the_returned_job_holds_what_was_stored():
    row = later(jobs.record, [("a", (1, 2))], {"sleep": {"nested": (3, [4, (5,)])}})
    assert row.args == [["a", [1, 2]]]
    assert row.kwargs == {"sleep": {"nested": [3, [4, [5]]]}}
    stored = Job.objects.get(pk=row.pk)
    assert (stored.args, stored.kwargs) == (row.args, row.kwargs)
    many = later_many(jobs.record, [[(1,)], ([("x", "y")], {"sleep": (0,)})])
    assert [(m.args, m.kwargs) for m in many] == [([[1]], {}), ([["x", "y"]], {"sleep": [0]})]
    assert [(j.args, j.kwargs) for j in Job.objects.filter(pk__in=[m.pk for m in many])] == [
        ([[1]], {}),
        ([["x", "y"]], {"sleep": [0]}),
    ]


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: later(jobs.record, [{1: "a"}]),
            r"argument 0 of job tests.testapp.jobs.record has a dict key 1 \(int\) at args\[0\]: "
            r"JSON object keys are strings, so the job would get '1' instead",
        ),
        (
            lambda: jobs.record.enqueue("k", sleep=[{"ok": {None: 1}}]),
            r"keyword argument 'sleep' .* dict key None \(NoneType\) at "
            r"kwargs\['sleep'\]\[0\]\['ok'\]: .* would get 'null'",
        ),
        (
            lambda: later_many(jobs.record, [["fine"], [{("t",): 1}]]),
            r"argument 0 .* dict key \('t',\) \(tuple\) at args\[0\]: JSON object keys are "
            r"strings\. Use string keys",
        ),
    ],
)
def test_a_dict_key_that_is_not_a_string_is_refused_and_nothing_is_stored(call, match):
    with pytest.raises(NotSerializable, match=match):
        call()
    assert Job.objects.count() == 0
