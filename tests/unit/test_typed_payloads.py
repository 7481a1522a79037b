"""Typed payloads: arguments checked against their annotations at the call, stored as JSON,
read back into their types at perform; plain parameters as before."""

import sys
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone as django_tz
from typing_extensions import TypedDict

from django_jobs import InvalidArgument, job, later, later_many
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests.testapp.models import Execution
from tests.testapp.typed_jobs import (
    Address,
    Line,
    Order,
    Profile,
    Tier,
    canonical,
    roundtrip,
    when_only,
)

if TYPE_CHECKING:
    from collections import OrderedDict  # only for the unresolvable-annotation test

pytestmark = pytest.mark.django_db(transaction=True)

PARIS = ZoneInfo("Europe/Paris")
ORDER_ID = uuid.UUID("6f1c1a52-3a53-4a8e-9d5c-2f0f1b9f6b11")


class Point(TypedDict):
    x: int
    label: str


def arguments() -> dict:
    """One argument of every supported kind, with values that lose something if stored
    carelessly: Decimal digits and trailing zeros, a UTC offset, microseconds."""
    return {
        "key": "all",
        "when": datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=PARIS),
        "day": date(2026, 2, 28),
        "at": time(23, 59, 58, 999999),
        "span": timedelta(days=3, seconds=7, microseconds=5),
        "amount": Decimal("12345678901234567890.123456789000"),
        "ident": ORDER_ID,
        "tier": Tier.GOLD,
        "order": Order(
            id=ORDER_ID,
            placed=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
            lines=[Line("a", Decimal("0.10")), Line("b", Decimal("-1E+3"))],
            tier=Tier.FREE,
        ),
        "address": Address(city="Lyon", since=date(1999, 12, 31)),
        "profile": Profile(name="Ada", born=date(1815, 12, 10), balance=Decimal("3.140")),
        "amounts": [Decimal("1.1"), Decimal("2.20")],
        "tiers": {"x": Tier.GOLD},
        "pair": (ORDER_ID, Decimal("9.99")),
        "maybe": None,
        "plain": {"json": [1, "two"]},
    }


def test_every_supported_type_comes_back_as_it_was_enqueued():
    sent = arguments()
    key, rest = sent.pop("key"), sent
    row = roundtrip.enqueue(key, **rest)
    assert run_jobs().succeeded == 1
    stored = Job.objects.get(pk=row.pk)
    assert stored.return_value == canonical({"key": key, **rest})
    # Decimals as strings (every digit, trailing zeros), dates as ISO 8601, enums by value.
    kwargs = stored.kwargs
    assert kwargs["amount"] == "12345678901234567890.123456789000"
    assert kwargs["when"] == "2026-03-29T01:30:00.123456+01:00"
    assert kwargs["order"]["lines"][1]["amount"] == "-1E+3"
    assert (kwargs["tier"], kwargs["ident"]) == ("gold", str(ORDER_ID))
    assert kwargs["plain"] == {"json": [1, "two"]}


def test_positional_arguments_are_typed_too_and_later_many_checks_each_call():
    when = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    rows = later_many(when_only, [["p1", when], (["p2"], {"when": when + timedelta(days=1)})])
    assert rows[0].args == ["p1", "2026-05-01T08:00:00Z"]
    assert rows[1].kwargs == {"when": "2026-05-02T08:00:00Z"}
    assert run_jobs().succeeded == 2
    results = sorted(Job.objects.values_list("return_value", flat=True), key=str)
    assert results == sorted(
        [canonical({"when": when}), canonical({"when": when + timedelta(days=1)})], key=str
    )


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("when", "2026-01-01T00:00:00Z", "must be datetime: Input should be a valid datetime"),
        ("day", datetime(2026, 1, 1, tzinfo=UTC), "must be date"),
        ("at", "12:00", "must be time"),
        ("span", 60, "must be timedelta"),
        ("amount", 1.5, "must be Decimal: Input should be an instance of Decimal (got float"),
        ("amount", 3, "(got int 3)"),
        ("ident", str(ORDER_ID), "must be UUID"),
        ("tier", "gold", "must be Tier"),
        ("order", {"id": ORDER_ID}, "must be Order"),
        ("address", {"city": "Lyon"}, "since: Field required"),
        ("profile", {"name": "Ada"}, "must be Profile"),
        (
            "amounts",
            [Decimal(1), 2],
            "amounts' of job typed:roundtrip must be list[decimal.Decimal]: [1]",
        ),
        ("pair", [ORDER_ID, Decimal(1)], "must be tuple[uuid.UUID, decimal.Decimal]"),
    ],
)
def test_a_wrong_type_is_refused_at_the_call_naming_job_and_parameter(name, value, expected):
    sent = arguments()
    sent[name] = value
    key = sent.pop("key")
    with pytest.raises(InvalidArgument) as caught:
        roundtrip.enqueue(key, **sent)
    assert f"argument {name!r} of job typed:roundtrip" in str(caught.value)
    assert expected in str(caught.value)
    assert not Job.objects.exists()


def test_a_wrong_type_deep_inside_names_where_it_is_and_stores_nothing_of_the_batch():
    sent = arguments()
    sent["order"].lines[1].amount = 7  # an int where the dataclass says Decimal
    key = sent.pop("key")
    good = arguments()
    good.pop("key")
    with pytest.raises(InvalidArgument, match=r"argument 'order' .*lines\[1\]\.amount"):
        later_many(roundtrip, [([key], good), ([key], sent)])
    with pytest.raises(InvalidArgument, match="'order'"):
        roundtrip.using(queue="email", priority=3).enqueue(key, **sent)
    with pytest.raises(InvalidArgument, match="'order'"):
        later(roundtrip, [key], sent)
    assert not Job.objects.exists()


def test_naive_datetimes_are_refused_under_use_tz_wherever_they_are():
    with pytest.raises(InvalidArgument, match="'when' of job typed:when holds a naive datetime"):
        when_only.enqueue("n", datetime(2026, 1, 1, 9, 0))
    sent = arguments()
    sent["order"].placed = datetime(2026, 1, 1, 9, 0)
    key = sent.pop("key")
    with pytest.raises(InvalidArgument, match=r"naive datetime at placed while USE_TZ"):
        roundtrip.enqueue(key, **sent)
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    "when",
    [
        datetime(2026, 7, 1, 9, 30, 5),
        datetime(2026, 7, 1, 9, 30, 5, tzinfo=timezone(timedelta(hours=-5))),
    ],
    ids=["naive", "aware"],
)
def test_without_use_tz_naive_and_aware_datetimes_keep_what_they_are(settings, when):
    settings.USE_TZ = False
    row = when_only.enqueue("u", when)
    assert run_jobs().succeeded == 1
    assert Job.objects.get(pk=row.pk).return_value == canonical({"when": when})
    assert canonical({"when": when})[1]["when"][1] == when.isoformat()


def test_a_stored_argument_that_no_longer_validates_is_an_error_naming_the_parameter():
    # As if "when" had been annotated str when this row was enqueued.
    Job.objects.create(
        name="typed:when", args=["changed", "next tuesday"], kwargs={}, run_at=django_tz.now()
    )
    result = run_jobs(max_rounds=1)
    assert (result.succeeded, result.retried) == (0, 1)
    error = result.errors[0].error
    assert "InvalidArgument: the stored argument 'when' of job typed:when is not datetime" in error
    assert "was the annotation changed" in error and "'next tuesday'" in error
    row = Job.objects.get()
    assert row.attempts == 1 and row.run_at > row.created_at and "'when'" in row.last_error
    assert not Execution.objects.exists()


def test_plain_parameters_keep_the_plain_json_rule_and_build_no_payload():
    @job(name="typed:plain")
    def plain(a: int, b: str, c: dict[str, list[int]], d: tuple, e: float | None = None, f=0):
        pass

    row = plain.enqueue(1, "b", {"x": [1]}, (1, 2))
    assert plain.payload is None
    assert (row.args, Job.objects.get().args) == ([1, "b", {"x": [1]}, [1, 2]],) * 2


def test_star_args_and_kwargs_annotations_apply_to_each_item():
    seen = []

    @job(name="typed:star")
    def star(*amounts: Decimal, **days: date):
        seen.append((amounts, days))

    row = star.enqueue(Decimal("1.0"), Decimal("2.50"), start=date(2026, 1, 2))
    assert (row.args, row.kwargs) == (["1.0", "2.50"], {"start": "2026-01-02"})
    with pytest.raises(InvalidArgument, match="argument 'amounts'"):
        star.enqueue(Decimal(1), 2)
    run_jobs()
    assert seen == [((Decimal("1.0"), Decimal("2.50")), {"start": date(2026, 1, 2)})]


def test_key_callables_get_the_typed_values():
    keys = []

    def key(order_id: uuid.UUID) -> str:
        keys.append(order_id)
        return str(order_id)

    @job(name="typed:unique", unique=True, unique_key=key)
    def charge(order_id: uuid.UUID):
        pass

    first, second = charge.enqueue(ORDER_ID), charge.enqueue(ORDER_ID)
    assert keys == [ORDER_ID, ORDER_ID] and first.created and not second.created


def test_an_unresolvable_annotation_is_plain_json():
    @job(name="typed:unresolvable")
    def unresolvable(mapping: "OrderedDict[str, int]"):
        pass

    assert unresolvable.payload is None
    assert unresolvable.enqueue({"a": 1}).args == [{"a": 1}]


def test_an_annotation_pydantic_cannot_validate_is_refused_at_the_call():
    class Opaque:
        pass

    @job(name="typed:opaque")
    def opaque(thing: Opaque):
        pass

    with pytest.raises(ImproperlyConfigured, match="parameter 'thing' is annotated .*Opaque"):
        opaque.enqueue(Opaque())
    assert not Job.objects.exists()


def test_without_pydantic_typed_parameters_are_refused_and_plain_ones_still_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydantic", None)

    @job(name="typed:needs-extra")
    def needs(amount: Decimal, note: str):
        pass

    @job(name="typed:fine")
    def fine(amount: str, count: int = 0):
        pass

    @job(name="typed:json-typeddict")
    def json_dict(point: Point, points: list[Point] | None = None):
        pass

    with pytest.raises(ImproperlyConfigured, match=r"pip install 'django-dbjobs\[pydantic\]'"):
        needs.enqueue(Decimal(1), "x")
    assert not Job.objects.exists()
    assert fine.enqueue("1.0").args == ["1.0"]
    # A TypedDict of JSON fields is a dict JSON holds as it is: plain, unchecked.
    assert json_dict.payload is None
    assert json_dict.enqueue({"x": 1, "label": "a"}).args == [{"x": 1, "label": "a"}]


def test_check_reports_typed_parameters_it_cannot_handle_and_unresolvable_annotations(
    monkeypatch,
):
    from django_jobs.checks.declarations import check_typed_parameters

    @job(name="typed:check-unresolvable")
    def unresolvable(mapping: "OrderedDict[str, int]"):
        pass

    assert ("django_jobs.W180", "typed:check-unresolvable") in {
        (m.id, m.obj) for m in check_typed_parameters()
    }
    monkeypatch.setitem(sys.modules, "pydantic", None)

    @job(name="typed:check-needs")
    def needs(amount: Decimal):
        pass

    errors = [m for m in check_typed_parameters() if m.id == "django_jobs.E180"]
    assert [m.obj for m in errors] == ["typed:check-needs"]
    assert "pip install 'django-dbjobs[pydantic]'" in errors[0].msg
