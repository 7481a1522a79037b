"""Concurrency limits: at most N jobs with the same key run at once, on every host.

``@job(concurrency=N, concurrency_key=callable)`` gives each call a key (the job's name,
plus what the callable returns for the call's arguments); a worker group's
``CONCURRENCY`` gives every job of its queues without a limit of its own the key
``queue:<name>``. The key and N are stored on the row, so any worker enforces them.

How the database enforces it (``Storage.claim`` and the statements that end a claim):

* A slot is taken when a job is claimed, and given back by the statement that ends the
  claim (success, retry, failure, cancellation, give-back, recovery after a dead
  worker): the running rows with the key *are* the slots, so no counter can drift.
* Deciding who gets a slot is serialised per key by locking that key's ``LimitLock``
  row in the claim's transaction (in key order), then counting the key's claimed rows.
* A picked row that finds no free slot is parked in the same transaction: ``run_at``
  becomes NULL, which takes it out of every claim, so it is never read again by claims
  and never holds back the jobs behind it. It spends no attempt and records no error.
* The transaction that ends a holder's claim locks the key too and un-parks as many
  waiting rows as slots are free (``run_at`` = now), oldest first, then wakes workers.
  A row parked by a claim that was still counting while the holder ended is seen by the
  un-park, which waits for the claim's lock; recovery's periodic pass un-parks any key
  left with free slots (a holder deleted by hand, say).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conf import jobs_settings
from .unique import call_key

#: Length of the ``concurrency_key`` column (and of ``LimitLock.key``).
KEY_LENGTH = 255
#: The key of a job counted against its queue's ``CONCURRENCY``.
QUEUE_PREFIX = "queue:"


@dataclass(frozen=True)
class ConcurrencyRule:
    """What ``@job(concurrency=N, concurrency_key=...)`` declared."""

    limit: int
    #: A callable of the call's arguments returning the key (a str or an int); None: one
    #: key for every call of the job.
    key: Callable[..., Any] | None = None


def rule(
    job_name: str, concurrency: Any = None, concurrency_key: Any = None
) -> ConcurrencyRule | None:
    """The rule the decorator's options describe, or None; a clear error when they are bad."""
    where = f"@job {job_name}"
    if concurrency is None:
        if concurrency_key is not None:
            raise TypeError(f"{where}: concurrency_key needs concurrency=N (the limit per key)")
        return None
    check_limit(concurrency, f"{where}: concurrency")
    if concurrency_key is not None and not callable(concurrency_key):
        raise TypeError(
            f"{where}: concurrency_key must be a callable of the job's arguments returning "
            f"the key (a str or an int), not {concurrency_key!r}"
        )
    return ConcurrencyRule(limit=concurrency, key=concurrency_key)


def check_limit(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{what} must be an int >= 1 (how many jobs with one key may run at once), "
            f"not {value!r}"
        )
    return value


def key_for(definition: Any, args: list[Any], kwargs: dict[str, Any]) -> str | None:
    """The ``concurrency_key`` of a call of a job with a rule; a clear error when the
    callable fails or returns something that is not a key."""
    rule: ConcurrencyRule = definition.concurrency
    return limit_key(definition, rule.key, "concurrency", args, kwargs, KEY_LENGTH)


def limit_key(
    definition: Any,
    key: Callable[..., Any] | None,
    kind: str,
    args: list[Any],
    kwargs: dict[str, Any],
    length: int,
) -> str:
    """The key a call of a limited job counts against (``kind``: "concurrency" or
    "rate"): the job's name, with what its ``<kind>_key`` callable returns for the call;
    a clear error when the callable fails or returns something that is not a key."""
    if key is None:
        result = definition.name
    else:
        value = call_key(key, f"{kind}_key", definition.name, args, kwargs)
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise TypeError(
                f"{kind}_key of job {definition.name} must return a non-empty str or an int, "
                f"not {value!r}"
            )
        result = f"{definition.name}:{value}"
    if len(result) > length:
        raise ValueError(
            f"the {kind} key of job {definition.name} is {len(result)} characters long; "
            f"with the job's name it must fit in {length}"
        )
    return result


def for_call(
    definition: Any, queue: str, args: list[Any], kwargs: dict[str, Any]
) -> tuple[str, int] | None:
    """(key, limit) for a call into ``queue``, or None when no limit applies."""
    queue_limit = jobs_settings().queue_concurrency.get(queue)
    rule = getattr(definition, "concurrency", None)
    if rule is None:
        return None if queue_limit is None else (QUEUE_PREFIX + queue, queue_limit)
    if queue_limit is not None:
        raise ValueError(
            f"job {definition.name} has a concurrency limit of its own and queue {queue!r} "
            "has CONCURRENCY: a job counts against one limit. Enqueue it into another "
            "queue, or drop one of the two limits"
        )
    return key_for(definition, args, kwargs), rule.limit


def describe(key: str, limit: int | None) -> str:
    """What the admin and ``jobs status`` say of a job waiting for a slot."""
    return f"concurrency limit {limit} for key {key}"
