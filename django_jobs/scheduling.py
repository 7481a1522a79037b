"""``later`` and ``later_many``: enqueue calls of a job given as a definition or a name."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from . import calls as _calls
from . import registry
from .models import Job


def later(
    job: Any,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    wait: float | timedelta | None = None,
    wait_until: datetime | None = None,
    queue: str | None = None,
    priority: int | None = None,
    unique_key: str | None = None,
    tag: str | None = None,
    after: Any = None,
    batch: Any = None,
) -> Job:
    """Store one call of ``job`` to run in a worker; returns the stored row.

    Inside ``transaction.atomic()`` on the jobs database the row is part of the
    transaction. Inside a transaction on another database only, the row is stored when
    that transaction commits (and the returned row has no id until then). Tuples in the
    arguments are stored as lists, and the returned row holds them so; a dict key that is
    not a string raises ``NotSerializable``.

    For a unique job (or with ``unique_key``, a string that makes this call unique), a
    duplicate stores nothing and the job that holds the key is returned, with
    ``created`` False (see docs/howto/unique.md). ``tag`` labels the call (at most 64
    characters, one line): it is shown in logs, the admin and ``jobs status``.

    ``after``: a job (as ``later`` returns it), a job id, or a list of them: the call
    runs only once every one of them succeeded, and is recorded as never run if one
    fails or is cancelled (see docs/howto/chaining.md). ``batch``: a batch from
    ``open_batch()`` that the call joins (see docs/howto/batches.md).
    """
    return _calls.store_call(
        registry.resolve(job),
        args,
        kwargs,
        wait=wait,
        wait_until=wait_until,
        queue=queue,
        priority=priority,
        unique_key=unique_key,
        tag=tag,
        after=after,
        batch=batch,
    )


def later_many(
    job: Any,
    calls: Iterable[Sequence[Any] | tuple[Sequence[Any], dict[str, Any]]],
    *,
    wait: float | timedelta | None = None,
    wait_until: datetime | None = None,
    queue: str | None = None,
    priority: int | None = None,
    tag: str | None = None,
    after: Any = None,
    batch: Any = None,
) -> list[Job]:
    """Store many calls of one job with one INSERT statement per 1,000 rows.

    Each item of ``calls`` is a list of positional arguments, or an ``(args, kwargs)``
    pair. Every call is checked before anything is stored. ``tag`` labels every call;
    ``after`` and ``batch`` apply to every call, as in ``later``.
    """
    return _calls.store_calls(
        registry.resolve(job),
        calls,
        wait=wait,
        wait_until=wait_until,
        queue=queue,
        priority=priority,
        tag=tag,
        after=after,
        batch=batch,
    )
