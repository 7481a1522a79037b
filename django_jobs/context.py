"""The context a ``@job(takes_context=True)`` function receives as its first argument."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
    report: Callable[[int, str], None] | None = None

    #: ``should_stop()`` turns true this many seconds before the timeout.
    TIMEOUT_MARGIN = 1.0

    @classmethod
    def detached(cls, name: str) -> JobContext:
        """The context of a job run with ``.perform()``: no row, first attempt."""
        return cls(job_id=None, name=name, attempt=1)

    def should_stop(self) -> bool:
        """True once the worker stops gracefully or the job's timeout is near: save and return."""
        if self.stopping.is_set():
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline - self.TIMEOUT_MARGIN

    def progress(self, percent: int, message: str = "") -> None:
        """Store progress (0–100 and a short message) on the job's row for status and admin."""
        percent = max(0, min(100, int(percent)))
        if self.report is not None:
            self.report(percent, str(message)[:255])
