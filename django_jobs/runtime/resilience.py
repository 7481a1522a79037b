"""Riding out a database that goes away: back off, reconnect, carry on."""

from __future__ import annotations

import logging
import random
import select
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, connections

from ..executor import tidy_connections
from ..storage.waiting import drain

logger = logging.getLogger("django_jobs.worker")

T = TypeVar("T")

#: The first and the longest back-off between attempts to reach a database that went away.
DB_BACKOFF_BASE = 0.25
MAX_DB_BACKOFF = 10.0


def backoff_delay(failures: int, base: float = DB_BACKOFF_BASE) -> float:
    """Exponential, capped before it is computed (no overflow however long the outage),
    with jitter so that workers that lost the database together do not return together."""
    ceiling = min(MAX_DB_BACKOFF, base * 2 ** min(failures, 16))
    return ceiling / 2 + random.random() * ceiling / 2


class DatabaseRetry:
    """Runs database actions for one worker, retrying with back-off while the database is down.

    The back-off sleeps on the worker's wake-up pipe, so a stop signal cuts it short.
    """

    def __init__(self, identity: str, wake_fd: int, stopping_now: Callable[[], bool]) -> None:
        self.identity = identity
        self.wake_fd = wake_fd
        self.stopping_now = stopping_now
        self.base = DB_BACKOFF_BASE

    def run(self, action: Callable[[], T], attempts: int | None = None) -> T | None:
        """Run ``action``; None when it gave up after ``attempts`` (None: keep trying)."""
        failures = 0
        while True:
            try:
                result = action()
            except (DatabaseError, InterfaceError) as exc:
                failures += 1
                limit = attempts if attempts is not None else (1 if self.stopping_now() else None)
                if limit is not None and failures >= limit:
                    logger.error("[jobs] %s: giving up on the database: %s", self.identity, exc)
                    return None
                self.down(exc, failures)
            else:
                if failures:
                    logger.warning("[jobs] %s: the database is back", self.identity)
                return result

    def down(self, exc: Exception, failures: int) -> None:
        """Log, drop broken connections, and wait before the next try."""
        delay = backoff_delay(failures, self.base)
        logger.warning(
            "[jobs] %s: database error (%s); retrying in %.1fs", self.identity, exc, delay
        )
        for conn in connections.all(initialized_only=True):
            conn.close_if_unusable_or_obsolete()
            if conn.connection is not None and not conn.is_usable():
                conn.close()
        tidy_connections()
        # Wait for the delay, or until woken (a stop signal). A wake-up byte is drained,
        # or the next waits would return at once: a busy loop for the rest of the outage.
        readable, _, _ = select.select([self.wake_fd], [], [], delay)
        if readable:
            drain(self.wake_fd)
