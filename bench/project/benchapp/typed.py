"""The no-op job with a typed payload (``enqueue_typed``, ``drain_typed``).

Imported by the processes of those cases only (BENCH_TYPED): a declared typed job makes
every process's system checks import pydantic and build the job's adapters at start (as
the first enqueue would), about 0.1 s of CPU that the plain cases must not measure.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django_jobs import job


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
