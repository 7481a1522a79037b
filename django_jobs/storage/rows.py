"""The values that travel between the storage and the worker: new rows, claimed jobs,
outcomes, start marks, held rows, and the claim token."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

OUTCOME_SUCCEEDED = "succeeded"
OUTCOME_RETRY = "retry"
OUTCOME_FAILED = "failed"

#: Columns a claim returns, in this order.
CLAIM_COLUMNS = ("id", "name", "args", "kwargs", "queue", "priority", "attempts", "run_at")


@dataclass(frozen=True, slots=True)
class NewJob:
    name: str
    args: str  # JSON text
    kwargs: str  # JSON text
    queue: str
    priority: int
    run_at: datetime
    arg_list: list[Any] = field(default_factory=list)  # the values behind ``args``
    kwarg_dict: dict[str, Any] = field(default_factory=dict)


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

    @classmethod
    def from_row(cls, row: Sequence[Any], token: int) -> ClaimedJob:
        job_id, name, args, kwargs, queue, priority, attempts, run_at = row[:8]
        return cls(
            job_id, name, _json(args), _json(kwargs), queue, priority, attempts, run_at, token
        )

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
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    return json.loads(value) if isinstance(value, str) else value
