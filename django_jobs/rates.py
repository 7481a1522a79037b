"""Rate limits: at most N jobs with the same key start in any window of a period, on
every host.

``@job(rate_limit="100/m", rate_key=callable)`` gives each call a key (the job's name, plus
what the callable returns for the call's arguments); a worker group's ``RATE_LIMIT``
gives every job of its queues without a limit of its own the key ``queue:<name>``. The
key and the limit are stored on the row, so any worker enforces them.

How the database enforces it (``Storage.claim``, see ``storage/rates.py``):

* Each start is a *grant*: a ``RateGrant`` row with the key and the moment. A claim that
  picks a row with a key locks the key's ``LimitLock`` row (``rate:<key>``) and reads the
  key's latest N grants: the row may start at the earliest moment that is not before the
  latest grant (claim order is kept) and, when N grants exist, not before the N-th latest
  plus the period and a margin (see :func:`margin`).
* When that moment is now, the row is claimed and its grant written. When it is later,
  the grant is written for that moment with the row's id (a reservation) and the row's
  ``run_at`` becomes that moment: the row waits like a scheduled job (workers sleep until
  the next ``run_at``; no polling) without spending an attempt, and the claim that picks
  it then uses its reservation instead of asking again.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .conf import jobs_settings
from .limits import KEY_LENGTH, QUEUE_PREFIX, limit_key

#: Length of the ``rate_limit`` column: a normalised rate such as ``5000/h``.
RATE_LENGTH = 32
#: The ``LimitLock`` key of a rate key (the rate and concurrency keys of one job differ).
LOCK_PREFIX = "rate:"

_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0,
    "d": 86400.0, "day": 86400.0,
}  # fmt: skip
_SHORT = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}
_PATTERN = re.compile(
    r"^\s*(?P<count>\d+)\s*/\s*(?P<many>\d+(?:\.\d+)?)?\s*"
    r"(?P<unit>seconds?|secs?|s|minutes?|mins?|m|hours?|h|days?|d)\s*$"
)


@dataclass(frozen=True)
class Rate:
    """``count`` starts per ``period`` seconds."""

    count: int
    period: float

    @property
    def text(self) -> str:
        """The stored form: ``20/s``, ``100/m``, ``10/5s``."""
        if self.period in _SHORT:
            return f"{self.count}/{_SHORT[self.period]}"
        return f"{self.count}/{self.period:g}s"

    @property
    def margin(self) -> float:
        return margin(self.period)


def margin(period: float) -> float:
    """Seconds added to the period between a grant and the grant N later: 10 % of the
    period, at most 0.1 s. Half of it lets a start be stamped that much before the claim
    that makes it (a claim made a little late does not push the next window back); the
    other half covers the moment between the claim and the start (the commit, a thread).
    """
    return min(period * 0.1, 0.1)


@lru_cache(maxsize=256)
def parse(value: str) -> Rate:
    """``"100/m"``, ``"10/s"``, ``"5000/h"``, ``"3/d"``, ``"10/5s"``, ``"1/30min"``; a
    ``ValueError`` saying what is expected otherwise."""
    match = _PATTERN.match(value.lower()) if isinstance(value, str) else None
    unit = _UNITS.get(match["unit"].rstrip("s") or "s") if match else None
    if match is None or unit is None:
        raise ValueError(
            f"a rate limit is a string such as '100/m', '10/s', '5000/h' or '10/5s' "
            f"(starts per period), not {value!r}"
        )
    count, period = int(match["count"]), float(match["many"] or 1) * unit
    if count < 1 or period <= 0:
        raise ValueError(
            f"a rate limit needs at least 1 start per a positive period, not {value!r}"
        )
    rate = Rate(count, period)
    if len(rate.text) > RATE_LENGTH:
        raise ValueError(f"the rate limit {value!r} is too long to store")
    return rate


def is_rate(value: Any) -> bool:
    """True when ``value`` is a rate ``parse`` reads."""
    try:
        parse(value)
    except (ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class RateRule:
    """What ``@job(rate_limit=..., rate_key=...)`` declared."""

    rate: Rate
    #: A callable of the call's arguments returning the key (a str or an int); None: one
    #: key for every call of the job.
    key: Callable[..., Any] | None = None


def rule(job_name: str, rate_limit: Any = None, rate_key: Any = None) -> RateRule | None:
    """The rule the decorator's options describe, or None; a clear error when they are bad."""
    where = f"@job {job_name}"
    if rate_limit is None:
        if rate_key is not None:
            raise TypeError(f"{where}: rate_key needs rate_limit= (such as '100/m')")
        return None
    try:
        rate = parse(rate_limit)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if rate_key is not None and not callable(rate_key):
        raise TypeError(
            f"{where}: rate_key must be a callable of the job's arguments returning the key "
            f"(a str or an int), not {rate_key!r}"
        )
    return RateRule(rate=rate, key=rate_key)


def key_for(definition: Any, args: list[Any], kwargs: dict[str, Any]) -> str:
    """The rate key of a call of a job with a rule; a clear error when the callable fails
    or returns something that is not a key. The ``LimitLock`` key adds ``rate:``."""
    rule: RateRule = definition.rate
    return limit_key(definition, rule.key, "rate", args, kwargs, KEY_LENGTH - len(LOCK_PREFIX))


def for_call(
    definition: Any, queue: str, args: list[Any], kwargs: dict[str, Any]
) -> tuple[str, str] | None:
    """(key, stored rate) for a call into ``queue``, or None when no rate limit applies."""
    queue_rate = jobs_settings().queue_rate_limits.get(queue)
    rule = getattr(definition, "rate", None)
    if rule is None:
        if queue_rate is None:
            return None
        try:
            return QUEUE_PREFIX + queue, parse(queue_rate).text
        except ValueError as exc:
            raise ValueError(f'JOBS["WORKERS"] RATE_LIMIT of queue {queue!r}: {exc}') from None
    if queue_rate is not None:
        raise ValueError(
            f"job {definition.name} has a rate limit of its own and queue {queue!r} has "
            "RATE_LIMIT: a job counts against one rate limit. Enqueue it into another queue, "
            "or drop one of the two limits"
        )
    return key_for(definition, args, kwargs), rule.rate.text
