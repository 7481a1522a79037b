"""Rate limits, statement by statement, on every engine: the grants a claim writes, the
rows it makes wait (and for how long), reservations used once, and bad input."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings

from django_jobs import clock, job, later, later_many
from django_jobs.models import Job, JobStatus, RateGrant
from django_jobs.rates import Rate, margin, parse
from django_jobs.runtime.status import render_status
from django_jobs.storage import OUTCOME_SUCCEEDED, Outcome, get_storage
from django_jobs.testing import run_jobs
from tests.settings import JOBS as TEST_JOBS
from tests.testapp import jobs, rate_jobs
from tests.testapp.models import Execution
from tests.unit.test_owner_index import explain

pytestmark = pytest.mark.django_db(transaction=True)

PERIOD = timedelta(seconds=1 + margin(1))


@pytest.fixture
def storage():
    """The jobs storage with every claim counting limits, as a worker whose registry
    declares one claims (put back after the test)."""
    storage = get_storage()
    storage.limited = True
    yield storage
    storage.limited = False
    storage.rated = False


def claim(storage, limit=100, now=None):
    return storage.claim("w", None, limit, now or clock.now())


@pytest.mark.parametrize(
    ("text", "count", "period", "stored"),
    [
        ("100/m", 100, 60, "100/m"),
        ("10/s", 10, 1, "10/s"),
        ("5000/h", 5000, 3600, "5000/h"),
        ("3/d", 3, 86400, "3/d"),
        ("10/5s", 10, 5, "10/5s"),
        (" 2 / 30 minutes ", 2, 1800, "2/1800s"),
        ("7/second", 7, 1, "7/s"),
        ("1/2.5s", 1, 2.5, "1/2.5s"),
        ("60/1m", 60, 60, "60/m"),
    ],
)
def test_rates_are_parsed_and_stored_in_one_form(text, count, period, stored):
    rate = parse(text)
    assert rate == Rate(count, period)
    assert rate.text == stored and parse(stored) == rate


@pytest.mark.parametrize("text", ["", "10", "10/ms", "0/s", "-1/s", "1/0s", "a/s", "10/w", 5, None])
def test_a_bad_rate_is_a_clear_error(text):
    with pytest.raises(ValueError, match="a rate limit"):
        parse(text)


def test_the_margin_is_ten_percent_of_the_period_at_most_a_tenth_of_a_second():
    assert margin(0.5) == pytest.approx(0.05)
    assert margin(1) == margin(60) == margin(3600) == 0.1


def test_a_call_stores_its_key_and_rate():
    row = Job.objects.get(pk=later(rate_jobs.paced, [1]).pk)
    assert (row.rate_key, row.rate_limit) == (rate_jobs.paced.name, "20/s")
    rows = later_many(rate_jobs.per_account, [["a"], ["b", 2]])
    stored = Job.objects.filter(pk__in=[r.pk for r in rows]).order_by("pk")
    assert [r.rate_key for r in stored] == [
        f"{rate_jobs.per_account.name}:a",
        f"{rate_jobs.per_account.name}:b",
    ]
    assert Job.objects.get(pk=later(jobs.record, ["plain"]).pk).rate_key is None


def test_a_claim_grants_the_budget_and_makes_the_rest_wait_their_turn(storage):
    ids = [r.pk for r in later_many(rate_jobs.paced, [[n] for n in range(45)])]
    now = clock.now()
    claimed = claim(storage, limit=100, now=now)
    # The first 20 start now; the other 25 wait, in claim order, without an attempt.
    assert [j.id for j in claimed] == ids[:20]
    waiting = list(Job.objects.filter(pk__in=ids[20:]).order_by("pk"))
    assert all(r.attempts == 0 and r.status == JobStatus.SCHEDULED for r in waiting)
    assert all(r.last_error == "" and r.locked_at is None for r in waiting)
    runs = [r.run_at for r in waiting]
    assert runs == sorted(runs) and runs[0] > now
    # 20 per window: the 21st waits a period (and the margin) after the 1st, and so on.
    grants = sorted(RateGrant.objects.values_list("at", flat=True))
    assert len(grants) == 45
    assert all(b - a >= PERIOD for a, b in zip(grants, grants[20:], strict=False))
    assert runs[20] - runs[0] >= PERIOD
    assert dict(RateGrant.objects.filter(job_id__isnull=False).values_list("job_id", "at")) == {
        r.pk: r.run_at for r in waiting
    }
    # Nothing is ready now; the next one comes due at its grant.
    assert claim(storage) == []
    assert storage.next_due(None, clock.now()) == runs[0]


def test_a_waiting_row_uses_its_grant_once_when_it_comes_due(storage):
    ids = [r.pk for r in later_many(rate_jobs.paced, [[n] for n in range(21)])]
    claim(storage)
    last = Job.objects.get(pk=ids[20])
    due = last.run_at
    # Claimed at its moment (even late), it uses its grant: no new one is written.
    [claimed] = claim(storage, now=due + timedelta(seconds=5))
    assert claimed.id == ids[20] and claimed.attempts == 1
    assert RateGrant.objects.count() == 21
    assert not RateGrant.objects.filter(job_id__isnull=False).exists()


def test_a_waiting_row_made_due_early_goes_back_to_its_moment(storage):
    ids = [r.pk for r in later_many(rate_jobs.paced, [[n] for n in range(21)])]
    claim(storage)
    due = Job.objects.get(pk=ids[20]).run_at
    Job.objects.filter(pk=ids[20]).update(run_at=clock.now())  # the admin's "run now"
    assert claim(storage) == []
    assert Job.objects.get(pk=ids[20]).run_at == due
    assert RateGrant.objects.count() == 21


def test_keys_are_paced_on_their_own(storage):
    later_many(rate_jobs.per_account, [[a, n] for n in range(7) for a in ("a", "b")])
    claimed = claim(storage)
    assert sorted(j.args[0] for j in claimed) == ["a"] * 5 + ["b"] * 5
    assert Job.objects.filter(run_at__gt=clock.now()).count() == 4


def test_a_row_parked_by_its_concurrency_limit_takes_no_grant(storage):
    both = job(lambda n: None, name="t.both", concurrency=1, rate_limit="10/s", max_attempts=1)
    ids = [r.pk for r in later_many(both, [[n] for n in range(3)])]
    claimed = claim(storage)
    assert [j.id for j in claimed] == ids[:1]
    # The other two wait for the slot (parked), not for the rate: one grant in all.
    assert set(Job.objects.blocked().values_list("pk", flat=True)) == set(ids[1:])
    assert RateGrant.objects.count() == 1
    storage.record([Outcome(claimed[0], OUTCOME_SUCCEEDED)], clock.now())
    [second] = claim(storage)
    assert second.id == ids[1] and RateGrant.objects.count() == 2


def test_the_job_page_and_status_say_until_when_a_job_is_rate_limited(storage):
    ids = [r.pk for r in later_many(rate_jobs.paced, [[n] for n in range(25)])]
    assert "Rate limited" not in render_status()
    claim(storage)
    waiting = Job.objects.get(pk=ids[-1])
    until = RateGrant.objects.get(job_id=waiting.pk).at
    assert waiting.rate_limited_until == until
    assert waiting.waiting_reason == (
        f"rate limited until {until:%H:%M:%S} (rate limit 20/s for key {rate_jobs.paced.name})"
    )
    assert Job.objects.get(pk=ids[0]).waiting_reason == ""  # running
    text = render_status()
    assert "Rate limited" in text
    assert (
        f"rate limit 20/s for key {rate_jobs.paced.name}: 5 job(s) rate limited until "
        f"{until:%H:%M:%S}" in text
    )


def test_run_jobs_runs_rate_limited_jobs_at_once():
    later_many(rate_jobs.paced, [[n] for n in range(30)])
    result = run_jobs()
    assert result.succeeded == 30 and Execution.objects.count() == 30
    assert not RateGrant.objects.exists()
    assert get_storage().paced


def test_the_claim_reads_grants_through_their_indexes(storage):
    # Thousands of grants of other keys, some reserved, beside the ones the claim reads.
    now = clock.now()
    RateGrant.objects.bulk_create(
        RateGrant(key=f"other:{n % 300}", at=now - timedelta(seconds=n), job_id=n % 2 or None)
        for n in range(6000)
    )
    later_many(rate_jobs.per_account, [[f"a{k}", n] for n in range(8) for k in range(50)])
    assert len(claim(storage, limit=500)) == 250
    for row in Job.objects.filter(run_at__gt=clock.now())[:5]:
        row.run_at = clock.now()
        row.save(update_fields=["run_at"])
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute("ANALYZE TABLE django_jobs_rategrant")
            cursor.fetchall()
        else:
            cursor.execute("ANALYZE")
    seen: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT") and "django_jobs_rategrant" in sql:
            seen.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        claim(storage, limit=5)
    assert len(seen) >= 2
    for sql, params in seen:
        plan = explain(sql, params)
        if connection.vendor == "postgresql":
            assert "Seq Scan" not in plan, plan
        elif connection.vendor == "sqlite":
            assert "SCAN django_jobs_rategrant" not in plan.replace('"', ""), plan
        else:
            assert " ALL " not in f" {plan} ", plan
        assert "rate_key_at_idx" in plan or "rate_job_idx" in plan, plan


def test_bad_options_fail_at_the_decorator():
    with pytest.raises(ValueError, match="@job t.bad: a rate limit is a string"):
        job(lambda: None, name="t.bad", rate_limit="fast")
    with pytest.raises(TypeError, match="rate_key needs rate_limit="):
        job(lambda: None, name="t.bad", rate_key=lambda: "k")
    with pytest.raises(TypeError, match="rate_key must be a callable"):
        job(lambda: None, name="t.bad", rate_limit="1/s", rate_key="account")


@pytest.mark.parametrize(
    ("returned", "error", "words"),
    [
        (None, TypeError, "must return a non-empty str or an int"),
        ("", TypeError, "must return a non-empty str or an int"),
        ("x" * 300, ValueError, "must fit in"),
        (ZeroDivisionError, ValueError, "rate_key of job t.keyed raised ZeroDivisionError"),
    ],
)
def test_a_bad_key_fails_the_call_and_stores_nothing(returned, error, words):
    def key(account):
        if returned is ZeroDivisionError:
            return 1 / 0
        return returned

    keyed = job(lambda account: None, name="t.keyed", rate_limit="1/s", rate_key=key)
    with pytest.raises(error, match=words):
        later(keyed, ["c"])
    with pytest.raises(error, match=words):
        later_many(keyed, [["ok"], ["c"]])
    assert not Job.objects.exists()


def test_a_job_with_a_rate_on_a_queue_with_one_fails_the_call():
    groups = [{"QUEUE": ["default"], "RATE_LIMIT": "5/s"}, {"QUEUE": "*"}]
    with override_settings(JOBS={**TEST_JOBS, "WORKERS": groups}):
        with pytest.raises(ValueError, match="counts against one rate limit"):
            later(rate_jobs.paced, [1])
        row = Job.objects.get(pk=later(jobs.record, ["q"]).pk)
        assert (row.rate_key, row.rate_limit) == ("queue:default", "5/s")
    assert Job.objects.count() == 1


def _check_ids(**jobs_overrides) -> list:
    from django.core.checks import run_checks

    from django_jobs import checks

    with override_settings(JOBS={**TEST_JOBS, **jobs_overrides}):
        return run_checks(tags=[checks.TAG])


@pytest.mark.parametrize("value", ["fast", "0/s", 10, "10/ms"])
def test_a_bad_queue_rate_limit_is_e132(value):
    [message] = _check_ids(WORKERS=[{"QUEUE": "*", "RATE_LIMIT": value}])
    assert message.id == "django_jobs.E132"
    assert 'JOBS["WORKERS"][0]["RATE_LIMIT"] must be a rate such as' in message.msg


def test_a_good_queue_rate_limit_is_clean():
    assert _check_ids(WORKERS=[{"QUEUE": ["email"], "RATE_LIMIT": "100/m"}, {"QUEUE": "*"}]) == []


def test_a_rate_limited_job_on_a_rate_limited_queue_is_e133():
    # The test jobs with rate limits of their own are on "default".
    messages = _check_ids(WORKERS=[{"QUEUE": ["default"], "RATE_LIMIT": "3/s"}, {"QUEUE": "*"}])
    assert {m.id for m in messages} == {"django_jobs.E133"}
    assert any(m.obj == rate_jobs.paced.name for m in messages)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_grants_hold_the_budget_whatever_the_timing_of_the_claims(storage, monkeypatch, seed):
    # One-row claims at random moments (late, early, bunched), as busy workers make them:
    # every start is checked against the grants of the window ending at it, so no window
    # of the period (and margin) ever holds 21 grants, and every job starts once.
    ids = [r.pk for r in later_many(rate_jobs.paced, [[n] for n in range(120)])]
    moment = [clock.now()]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    steps = random.Random(seed)
    started = []
    for _ in range(5000):
        moment[0] += timedelta(seconds=steps.choice([0.001, 0.005, 0.02, 0.1, 0.3]))
        for claimed in storage.claim("w", None, steps.choice([1, 1, 2, 5]), moment[0]):
            started.append(claimed.id)
            storage.record([Outcome(claimed, OUTCOME_SUCCEEDED)], moment[0])
        if len(started) == len(ids):
            break
    assert sorted(started) == ids
    grants = sorted(RateGrant.objects.values_list("at", flat=True))
    assert len(grants) == len(ids)
    assert all(b - a >= PERIOD for a, b in zip(grants, grants[20:], strict=False))
