"""Jobs with typed parameters: each returns what it received, type by type, so a test can
compare it with what it enqueued (``canonical`` of both)."""

from __future__ import annotations

import dataclasses
import os
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from uuid import UUID

from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from django_jobs import job
from tests.testapp.models import Execution


class Tier(Enum):
    FREE = "free"
    GOLD = "gold"


@dataclasses.dataclass
class Line:
    sku: str
    amount: Decimal


@dataclasses.dataclass
class Order:
    id: UUID
    placed: datetime
    lines: list[Line]
    tier: Tier


class Address(TypedDict):
    city: str
    since: date


class Profile(BaseModel):
    name: str
    born: date
    balance: Decimal


@job(keep_result=True, name="typed:roundtrip")
def roundtrip(
    key: str,
    when: datetime,
    day: date,
    at: time,
    span: timedelta,
    amount: Decimal,
    ident: UUID,
    tier: Tier,
    order: Order,
    address: Address,
    profile: Profile,
    amounts: list[Decimal],
    tiers: dict[str, Tier],
    pair: tuple[UUID, Decimal],
    maybe: datetime | None = None,
    plain=None,
):
    """Every supported kind of annotation; returns ``canonical`` of what it received."""
    received = dict(locals())
    Execution.objects.create(key=key, pid=os.getpid())
    return canonical(received)


@job(keep_result=True, name="typed:when")
def when_only(key: str, when: datetime):
    Execution.objects.create(key=key, pid=os.getpid())
    return canonical({"when": when})


def canonical(value):
    """``value`` as JSON that names the type of every part: equal for two values only when
    their types and contents are (an aware datetime by its wall time and UTC offset)."""
    kind = type(value).__qualname__
    if isinstance(value, datetime):
        return [kind, value.isoformat()]
    if dataclasses.is_dataclass(value):
        fields = dataclasses.fields(value)
        return [kind, {f.name: canonical(getattr(value, f.name)) for f in fields}]
    if isinstance(value, BaseModel):
        return [kind, {name: canonical(getattr(value, name)) for name in type(value).model_fields}]
    if isinstance(value, dict):
        return [kind, {str(k): canonical(v) for k, v in value.items()}]
    if isinstance(value, list | tuple):
        return [kind, [canonical(v) for v in value]]
    return [kind, repr(value)]
