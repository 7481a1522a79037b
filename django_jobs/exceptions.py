"""Exceptions raised by django_jobs. Each class's docstring is its default message."""

from __future__ import annotations

import difflib

from django.apps import apps
from django.core.exceptions import AppRegistryNotReady


class JobsError(Exception):
    """A django_jobs error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class JobsNotReady(JobsError, AppRegistryNotReady):
    """The job queue was used before Django's app registry is ready."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"django_jobs: {what} was used before Django's app registry is ready (while "
            "settings or an app's modules were still being imported). Enqueue from code "
            "that runs after start-up: a view, a signal receiver, a management command, or "
            "a script that calls django.setup() first; to run something when the process "
            "starts, enqueue it from a function, not at a module's top level"
        )


def ensure_ready(what: str) -> None:
    """Raise :class:`JobsNotReady` naming ``what`` unless the app registry has loaded the
    models (which is all the queue needs: an app's jobs module may import ``later`` while
    the registry runs the apps' ``ready()``)."""
    if not apps.models_ready:
        raise JobsNotReady(what)


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


class JobNotFound(JobsError, LookupError):
    """There is no job with this id."""

    def __init__(self, job_id: object) -> None:
        self.job_id = job_id
        super().__init__(
            f"There is no job with id {job_id!r} (it never existed, or it was deleted: "
            "succeeded jobs are deleted by default, see DELETE_SUCCESSFUL_JOBS)"
        )


class NotSerializable(JobsError, TypeError):
    """A job argument is not JSON-serialisable."""


class InvalidArgument(JobsError, TypeError):
    """A job argument does not match the type its parameter is annotated with."""


class JobNotImported(JobsError, LookupError):
    """The job is declared in a module that workers do not import: they could not run it."""


class EventTooLarge(JobsError, ValueError):
    """The event's JSON is longer than an event may be (``django_jobs.events``)."""


class WorkerIdentityInUse(JobsError):
    """Another live worker process already uses this identity."""


class JobTimeout(JobsError):
    """The job ran longer than its timeout and its worker process was stopped."""


class TaskNotAllowed(JobsError, LookupError):
    """A django.tasks row names a module outside the installed apps and
    JOBS["TASK_MODULES"], or something that is not a task: nothing was imported or run."""


class ResultNotSerializable(JobsError, TypeError):
    """The return value is not JSON: the attempt failed, and is not retried."""


class WorkerLost(JobsError):
    """The worker running the job died, or the job was taken from it (recovery)."""


class TaskNotFound(JobsError, LookupError):
    """The task a django.tasks row names cannot be found: was it renamed or removed?"""


class JobCancelled(JobsError):
    """The job was cancelled while it ran (a django.tasks task's error for that attempt)."""


class JobControl(Exception):
    """Raised inside a job to tell the worker what to do with it instead of an error."""

    reason: str = ""

    def _with_reason(self, text: str) -> str:
        return f"{text}: {self.reason}" if self.reason else text


def _delay(value: object, what: str) -> float:
    from datetime import timedelta

    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{what} must be seconds >= 0 or a timedelta, not {value!r}")
    return float(value)


class Retry(JobControl):
    """Run the job again (this attempt counts): in ``in_`` seconds or a ``timedelta``,
    or after the job's back-off when ``in_`` is None. Fails the job when no attempt
    is left."""

    def __init__(self, in_: object = None, reason: str = "") -> None:
        self.delay = None if in_ is None else _delay(in_, "Retry(in_=...)")
        self.reason = str(reason)
        when = "" if self.delay is None else f" in {self.delay:g} s"
        super().__init__(self._with_reason(f"retry requested{when}"))


class Snooze(JobControl):
    """Run the job again in ``seconds`` (or a ``timedelta``) without spending an
    attempt; at most ``JOBS["MAX_SNOOZES"]`` times per job."""

    def __init__(self, seconds: object, reason: str = "") -> None:
        self.delay = _delay(seconds, "Snooze(seconds)")
        self.reason = str(reason)
        super().__init__(self._with_reason(f"snoozed for {self.delay:g} s"))


class Discard(JobControl):
    """Fail the job now, with no further attempts, for ``reason``."""

    def __init__(self, reason: str = "") -> None:
        self.reason = str(reason)
        super().__init__(self._with_reason("discarded"))


class DependencyNotFound(JobsError, LookupError):
    """A job named in ``after=`` is not stored on the jobs database."""

    def __init__(self, job_id: object, alias: str) -> None:
        self.job_id = job_id
        super().__init__(
            f"after=: there is no job {job_id!r} on database {alias!r}: it was never stored "
            "there, or it ended and its row was deleted (succeeded jobs are, by default: "
            "DELETE_SUCCESSFUL_JOBS). Store a chain in one transaction.atomic() block, so "
            "that its first job cannot end before the jobs that wait for it are stored"
        )


class DependencyError(JobsError, ValueError):
    """``after=`` or ``batch=`` cannot be honoured (another database, a cycle, ...)."""


class BatchClosed(JobsError):
    """The batch is closed: it takes no more members."""

    def __init__(self, batch_id: object) -> None:
        self.batch_id = batch_id
        super().__init__(f"batch {batch_id} is closed: it takes no more members")
