"""The values that travel between the storage and the worker: new rows, claimed jobs,
outcomes, start marks, held rows, and the claim token."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

OUTCOME_SUCCEEDED = "succeeded"
OUTCOME_RETRY = "retry"
OUTCOME_FAILED = "failed"
#: The job's cancellation reached its worker before the job ended: kept as cancelled.
OUTCOME_CANCELLED = "cancelled"
#: Rescheduled without spending an attempt (``Snooze``).
OUTCOME_SNOOZE = "snooze"

#: Columns a claim returns, in this order.
#: ``meta`` is NULL for ``@job`` rows; ``django.tasks`` rows keep their backend's data there.
CLAIM_COLUMNS = (
    "id", "name", "args", "kwargs", "queue", "priority", "attempts", "run_at", "meta",
    "snoozes", "tag", "concurrency_key", "concurrency_limit", "rate_key", "rate_limit",
)  # fmt: skip


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which costs
# more per row of a later_many than the row's INSERT. Nothing changes one once made.
@dataclass(slots=True)
class NewJob:
    name: str
    args: str  # JSON text
    kwargs: str  # JSON text
    queue: str
    priority: int
    run_at: datetime
    arg_list: list[Any] = field(default_factory=list)  # the values behind ``args``
    kwarg_dict: dict[str, Any] = field(default_factory=dict)
    #: JSON text for the ``meta`` column (``django.tasks`` rows); None leaves it NULL.
    meta: str | None = None
    #: Set for a unique call (``django_jobs.unique``): stored by ``insert_unique`` only.
    unique_key: str | None = None
    #: A holder of the key enqueued longer ago than this no longer blocks the call.
    unique_for: timedelta | None = None
    #: ``Job.tag`` (None: no tag, and the INSERT leaves the column out).
    tag: str | None = None
    #: The concurrency limit the row counts against (``django_jobs.limits``), or None.
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    #: The rate limit the row counts against (``django_jobs.rates``): key and rate text.
    rate_key: str | None = None
    rate_limit: str | None = None


@dataclass(slots=True)
class ClaimedJob:
    id: int
    name: str
    args: Any
    kwargs: Any
    queue: str
    priority: int
    attempts: int
    run_at: Any
    #: The claim's fencing token (``claim_token``): unique to this claim of this row.
    token: int = 0
    #: The row's ``meta`` (decoded JSON), None for ``@job`` rows.
    meta: Any = None
    #: Times the job was snoozed before this claim (``Snooze``, bounded by MAX_SNOOZES).
    snoozes: int = 0
    #: The row's ``tag`` (None: untagged).
    tag: str | None = None
    #: The concurrency limit the claim holds a slot of (``django_jobs.limits``), or None.
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    #: The rate limit the row counts against (``django_jobs.rates``), or None.
    rate_key: str | None = None
    rate_limit: str | None = None
    #: The job may not start before this moment (``time.time()``): its rate limit granted
    #: it a start a moment after the claim (``django_jobs.storage.rates.LEAD``).
    not_before: float | None = None

    @classmethod
    def from_row(cls, row: Sequence[Any], token: int) -> ClaimedJob:
        job_id, name, args, kwargs, queue, priority, attempts, run_at, meta, snoozes, tag = row[:11]
        key, limit, rate_key, rate_limit = row[11:15]
        return cls(
            job_id, name, _json(args), _json(kwargs), queue, priority, attempts, run_at, token,
            None if meta is None else _json(meta), snoozes or 0, tag, key, limit, rate_key,
            rate_limit,
        )  # fmt: skip

    @property
    def limited(self) -> bool:
        """True when the claim must count a concurrency or a rate limit for this row."""
        return self.concurrency_key is not None or self.rate_key is not None

    def sort_key(self) -> tuple[int, Any, int]:
        return (self.priority, self.run_at, self.id)


@dataclass(slots=True)
class Outcome:
    """What became of one claimed job; ``run_at`` is the retry time for ``retry``."""

    job: ClaimedJob
    kind: str
    error: str = ""
    run_at: datetime | None = None
    #: When the attempt began: a datetime, or the worker's ``time.time()`` float (turned
    #: into a datetime only for rows that are kept); None when unknown.
    started_at: datetime | float | None = None
    #: The row is kept whatever ``DELETE_*_JOBS`` say (``django.tasks`` rows, and jobs
    #: declared with ``keep_result``): ``return_json`` and the attempt log go on it.
    keep: bool = False
    #: JSON text of the return value to store on success (None: nothing is stored).
    return_json: str | None = None
    #: Append this attempt to ``attempt_log`` (``django.tasks`` rows), in the statement
    #: that records the outcome; ``error_class`` is the failed attempt's exception path.
    log_attempt: bool = False
    error_class: str = ""
    #: Set ``unique_key`` to NULL with this outcome: the job leaves the states its
    #: unique rule counts (``django_jobs.unique.clears_unique_key``).
    clear_unique: bool = False
    #: What the database recorded, set by ``record(..., report=True)``: the kind,
    #: ``cancelled`` (its cancellation was asked for), or "" (its claim was taken away).
    ended: str = ""
    #: For ``django_jobs.signals``: the attempt's exception, its length in seconds
    #: (None when unknown) and the job's return value.
    exception: BaseException | None = None
    duration: float | None = None
    result: Any = None


@dataclass(frozen=True, slots=True)
class StartMark:
    """A claimed job that began to run, and its deadline (start + its timeout)."""

    job: ClaimedJob
    started_at: datetime
    expires_at: datetime | None


@dataclass(slots=True)
class HeldRow:
    """A locked row as recovery sees it."""

    job: ClaimedJob
    locked_by: str
    started_at: datetime | None
    expires_at: datetime | None


def new_token() -> int:
    """A claim token: random, positive, fits a signed 64-bit column on every engine."""
    return secrets.randbits(62) + 1


def _json(value: Any) -> Any:
    if value == "{}":  # the kwargs of most rows: a new dict, as json.loads would give
        return {}
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    return json.loads(value) if isinstance(value, str) else value


def chunks(items: list[int], size: int) -> Iterable[list[int]]:
    """``items`` in lists of at most ``size``: the ids one ``IN (...)`` statement takes."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
