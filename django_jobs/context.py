"""The context a ``@job(takes_context=True)`` function receives as its first argument."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field


@dataclass
class JobContext:
    """What a running job may know and report about itself."""

    job_id: int | None
    name: str
    attempt: int
    #: monotonic time at which the job's timeout expires (None: no timeout)
    deadline: float | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    #: Set when the job's cancellation reaches its worker (``django_jobs.cancel``).
    cancelled: threading.Event = field(default_factory=threading.Event)
    #: Submits a progress write; returns its future (see django_jobs.progress).
    report: Callable[[int, str], Future | None] | None = None
    #: Submits an event (JSON text) for the job's channel; returns its future.
    publisher: Callable[[str], Future | None] | None = None
    #: The alias of the jobs database that holds the job's row (None: not stored).
    database: str | None = None

    #: ``should_stop()`` turns true this many seconds before the timeout.
    TIMEOUT_MARGIN = 1.0

    @classmethod
    def detached(cls, name: str) -> JobContext:
        """The context of a job run with ``.perform()``: no row, first attempt."""
        return cls(job_id=None, name=name, attempt=1)

    def should_stop(self) -> bool:
        """True once the worker stops gracefully, the job is cancelled or its timeout is
        near: save and return."""
        if self.stopping.is_set() or self.cancelled.is_set():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline - self.TIMEOUT_MARGIN

    @property
    def cancel_requested(self) -> bool:
        """True once the job was cancelled while running: it should stop within
        ``JOBS["CANCEL_GRACE"]`` seconds, or its worker process is stopped."""
        return self.cancelled.is_set()

    #: The longest ``progress()`` waits for its write.
    PROGRESS_WAIT = 5.0

    def _report(self, percent: int, message: str) -> Future | None:
        if self.report is None:
            return None
        return self.report(max(0, min(100, int(percent))), str(message)[:255])

    def progress(self, percent: int, message: str = "") -> None:
        """Store progress (0–100 and a short message) on the job's row for status and admin.

        Written at once on a connection of its own: visible while the job runs, kept if
        the job's own transaction rolls back. Safe from threads and from ``async def``
        jobs, where it does not block the event loop (``await aprogress()`` waits).
        """
        future = self._report(percent, message)
        if future is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not on an event loop: wait, so the write is visible now
            wait([future], timeout=self.PROGRESS_WAIT)

    async def aprogress(self, percent: int, message: str = "") -> None:
        """``progress()`` for ``async def`` jobs: waits for the write without blocking."""
        future = self._report(percent, message)
        if future is not None:
            await asyncio.wait_for(asyncio.wrap_future(future), self.PROGRESS_WAIT)

    def _publish(self, payload: dict) -> Future | None:
        from .events import encode, job_channel

        # Checked here, in the job (also under .perform(), where nothing is sent): a bad
        # event raises where it was published.
        text = encode(job_channel(self.job_id or 0), payload)
        if self.publisher is None or self.job_id is None:
            return None
        return self.publisher(text)

    def publish(self, payload: dict) -> None:
        """Publish a small JSON object on this job's channel (``job:<id>``), for pages
        that watch it (``django_jobs.events``).

        Sent at once on a connection of its own, like ``progress()``: even if the job's
        own transaction later rolls back. Raises ``EventTooLarge`` above 7,999 bytes.
        """
        future = self._publish(payload)
        if future is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            wait([future], timeout=self.PROGRESS_WAIT)

    async def apublish(self, payload: dict) -> None:
        """``publish()`` for ``async def`` jobs: waits for the write without blocking."""
        future = self._publish(payload)
        if future is not None:
            await asyncio.wait_for(asyncio.wrap_future(future), self.PROGRESS_WAIT)
