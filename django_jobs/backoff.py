"""Retry delays and attempt limits: pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta


def retry_delay(attempts: int) -> timedelta:
    """The seed's polynomial back-off: ``attempts ** 4`` seconds (1 s, 16 s, 81 s, …)."""
    return timedelta(seconds=attempts**4)


def next_run_at(attempts: int, now: datetime) -> datetime:
    return now + retry_delay(attempts)


def attempts_spent(attempts: int, max_attempts: int) -> bool:
    """True when the attempt that just ended was the last one allowed."""
    return attempts >= max_attempts
