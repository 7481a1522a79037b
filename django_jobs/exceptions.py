"""Exceptions raised by django_jobs. Each class's docstring is its default message."""

from __future__ import annotations

import difflib


class JobsError(Exception):
    """A django_jobs error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class JobNotRegistered(JobsError, LookupError):
    """This job is not registered: no installed app's jobs module declares it with @job."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"Job {name!r} is not registered: no installed app's jobs module declares it "
            "with @job (was it renamed or removed?)"
        )


class UnknownQueue(JobsError, ValueError):
    """The queue is not in settings.JOBS["QUEUES"]."""

    def __init__(self, queue: str, known: tuple[str, ...]) -> None:
        self.queue = queue
        close = difflib.get_close_matches(str(queue), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        super().__init__(
            f"Queue {queue!r} is not in settings.JOBS['QUEUES'] {list(known)!r}{hint}: "
            "add it there or use one of those"
        )


class NotSerializable(JobsError, TypeError):
    """A job argument is not JSON-serialisable."""


class WorkerIdentityInUse(JobsError):
    """Another live worker process already uses this identity."""


class JobTimeout(JobsError):
    """The job ran longer than its timeout and its worker process was stopped."""
