"""Waiting for work: how an idle worker learns that jobs may be ready.

Each engine's storage returns a :class:`Waiter` (PostgreSQL: LISTEN/NOTIFY on its own
connection; SQLite: ``PRAGMA data_version``; MySQL/MariaDB: a cheap indexed probe).
"""

from __future__ import annotations

import os
import select
import time
from typing import TYPE_CHECKING

from .. import clock

if TYPE_CHECKING:
    from .base import Storage


class Waiter:
    """Sleeps until new work may be ready, a wake-up is written to ``wake_fd``, or timeout.

    ``start`` is called before the worker's first claim: whatever becomes ready after it
    must wake ``wait``, or a job enqueued between an empty claim and the first wait would
    sleep until the next poll.
    """

    #: Queues the worker does not claim from now (paused); kept up to date by the worker.
    paused: frozenset[str] = frozenset()

    def start(self) -> None:
        pass

    def wait(self, timeout: float, wake_fd: int) -> bool:
        """True when woken early because new work may be ready."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class SleepingWaiter(Waiter):
    """Sleeps until the timeout or a wake-up: for engines that cannot push a message."""

    def wait(self, timeout: float, wake_fd: int) -> bool:
        return _sleep_or_woken(max(0.0, timeout), wake_fd)


class PollingWaiter(Waiter):
    """Checks cheaply for ready rows every ``idle_check_interval`` seconds."""

    def __init__(self, storage: Storage, queues: tuple[str, ...] | None) -> None:
        self.storage = storage
        self.queues = queues

    def changed(self) -> bool:
        # Ready rows of a paused queue must not wake the worker again and again.
        return self.storage.has_ready(self.queues, clock.now(), self.paused)

    def wait(self, timeout: float, wake_fd: int) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if _sleep_or_woken(min(left, self.storage.idle_check_interval), wake_fd):
                return True
            if self.changed():
                return True


def _sleep_or_woken(seconds: float, wake_fd: int) -> bool:
    """Sleep up to ``seconds``; True if something was written to ``wake_fd``."""
    readable, _, _ = select.select([wake_fd], [], [], seconds)
    if readable:
        drain(wake_fd)
        return True
    return False


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
