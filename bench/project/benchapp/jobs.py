"""The jobs the benchmark runs: no-op (plain and typed), 10 ms sync, 10 ms async, and
pickup probes."""

import asyncio
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from bench.lib import record_pickup
from django_jobs import job


@job
def noop(i):
    pass


@dataclass
class Line:
    sku: str
    amount: Decimal


@job
def noop_typed(i: int, at: datetime, amount: Decimal, ident: UUID, line: Line):
    """A no-op whose payload is typed: four parameters converted each way."""


_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def typed_call(i: int) -> list:
    """The arguments of one ``noop_typed`` call (distinct per job, as real ones are)."""
    amount = Decimal(i) / 100
    return [i, _EPOCH + timedelta(seconds=i), amount, UUID(int=i), Line(f"sku-{i}", amount)]


@job
def sleep10(i):
    time.sleep(0.01)


@job
async def asleep10(i):
    await asyncio.sleep(0.01)


@job
def pickup(key):
    record_pickup(key)


if os.environ.get("BENCH_LIMITS"):
    from bench.project.benchapp import limited  # noqa: F401  (registers noop_limited)
