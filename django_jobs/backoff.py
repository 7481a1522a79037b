"""Retry delays and attempt limits: the back-off policies a job can name, as pure functions.

``@job(backoff=...)`` takes a policy (``Polynomial()``, ``Exponential(...)``,
``Fixed(...)``), one of their names (``"polynomial"``, ``"exponential"``, ``"fixed"``,
with the policy's defaults), or any callable of the attempt number that returns seconds
or a ``timedelta``. A name is resolved when the job is declared, so a typo fails at
import time; a callable is only called in a worker, where :func:`delay_for` turns its
errors into the default back-off and a sentence for ``last_error``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

#: Longest delay any policy may ask for: a year. Beyond that a datetime may overflow.
MAX_DELAY = 365 * 24 * 3600.0


@dataclass(frozen=True)
class Polynomial:
    """``attempts ** exponent`` seconds: 1 s, 16 s, 81 s, 256 s, … (the default)."""

    exponent: float = 4

    def __call__(self, attempt: int) -> float:
        return float(attempt) ** self.exponent


@dataclass(frozen=True)
class Exponential:
    """``initial * base ** (attempt - 1)`` seconds, at most ``cap``, spread by ``jitter``.

    ``jitter`` is a fraction: 0.1 draws the delay uniformly within ±10 %, so jobs that
    failed together (an outage) do not all come back in the same second. The cap applies
    after the jitter: no delay is ever longer than ``cap``.
    """

    base: float = 2.0
    initial: float = 1.0
    cap: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not _is_number(self.base) or not self.base >= 1:
            raise ValueError(f"Exponential base must be a number >= 1, not {self.base!r}")
        if not _is_number(self.initial) or not self.initial > 0:
            raise ValueError(f"Exponential initial must be a positive number, not {self.initial!r}")
        if not _is_number(self.cap) or not self.cap > 0:
            raise ValueError(f"Exponential cap must be a positive number, not {self.cap!r}")
        if not _is_number(self.jitter) or not 0 <= self.jitter < 1:
            raise ValueError(f"Exponential jitter must be in [0, 1), not {self.jitter!r}")

    def __call__(self, attempt: int) -> float:
        # Compared as logarithms: base ** attempt overflows a float long after the cap.
        growth = max(attempt - 1, 0) * math.log(self.base)
        if math.log(self.initial) + growth >= math.log(self.cap):
            delay = self.cap
        else:
            delay = self.initial * math.exp(growth)
        if self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return min(delay, self.cap)


@dataclass(frozen=True)
class Fixed:
    """The same delay after every attempt (60 s unless told)."""

    seconds: float = 60.0

    def __post_init__(self) -> None:
        if not _is_number(self.seconds) or self.seconds < 0:
            raise ValueError(f"Fixed seconds must be a number >= 0, not {self.seconds!r}")

    def __call__(self, attempt: int) -> float:
        return float(self.seconds)


#: Policies by the name ``@job(backoff="...")`` accepts.
NAMED: dict[str, Callable[[], Callable[[int], float]]] = {
    "polynomial": Polynomial,
    "exponential": Exponential,
    "fixed": Fixed,
}

DEFAULT = Polynomial()

Backoff = Callable[[int], "float | int | timedelta"]


def resolve(value: Any, job_name: str = "") -> Backoff:
    """The policy ``@job(backoff=value)`` asks for; ``ValueError``/``TypeError`` if none."""
    where = f" of job {job_name}" if job_name else ""
    if value is None:
        return DEFAULT
    if isinstance(value, str):
        factory = NAMED.get(value.strip().lower())
        if factory is None:
            raise ValueError(
                f"unknown backoff {value!r}{where}: use one of {', '.join(map(repr, NAMED))}, "
                "a policy such as Exponential(cap=600), or a callable of the attempt number"
            )
        return factory()
    if not callable(value):
        raise TypeError(
            f"backoff{where} must be a policy name, a policy or a callable of the attempt "
            f"number, not {value!r}"
        )
    return value


def seconds_of(value: Any) -> float:
    """A delay as a number of seconds >= 0; ``ValueError`` for anything else."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if not _is_number(value) or math.isnan(value) or value < 0:
        raise ValueError(f"returned {value!r}, not a number of seconds >= 0 or a timedelta")
    return min(float(value), MAX_DELAY)


def delay_for(policy: Backoff, attempt: int) -> tuple[float, str]:
    """Seconds to wait after ``attempt``, and a note for ``last_error`` when the policy
    failed (it raised or returned a bad value): the default back-off then applies, so
    one bad policy never stops a job from being retried, nor a worker from running."""
    try:
        return seconds_of(policy(attempt)), ""
    except Exception as exc:
        fallback = DEFAULT(attempt)
        return fallback, (
            f"backoff {_name(policy)} failed ({type(exc).__name__}: {exc}); "
            f"the default back-off applied ({fallback:g} s)"
        )


def _name(policy: Any) -> str:
    return getattr(policy, "__qualname__", None) or repr(policy)


def retry_delay(attempts: int) -> timedelta:
    """The seed's polynomial back-off: ``attempts ** 4`` seconds (1 s, 16 s, 81 s, …)."""
    return timedelta(seconds=DEFAULT(attempts))


def next_run_at(attempts: int, now: datetime) -> datetime:
    return now + retry_delay(attempts)


def attempts_spent(attempts: int, max_attempts: int) -> bool:
    """True when the attempt that just ended was the last one allowed."""
    return attempts >= max_attempts


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
