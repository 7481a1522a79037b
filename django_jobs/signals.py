"""Django signals for each step of a job's life, and the one module that sends them.

Connect receivers as for any Django signal::

    from django.dispatch import receiver
    from django_jobs.signals import job_failed

    @receiver(job_failed)
    def page_someone(sender, job, exception, duration, **kwargs): ...

``sender`` is the job's definition (what ``@job`` returned; connect with
``sender=send_receipt`` to hear one job), or None for a ``django.tasks`` row or a name no
longer registered. ``job`` is a :class:`JobInfo`. See docs/reference/signals.md for who
sends each signal, from which process and thread, and when.

The outcome signals follow the table: the worker sends them after the outcome is written,
for the rows whose claim it still held, with what the database recorded (a retry of a job
whose cancellation was asked for meanwhile is a cancellation). Each attempt's end is sent
exactly once, by whoever wrote it: the worker, its watchdog, or another worker's recovery.

A receiver that raises is logged on ``django_jobs.signals`` and changes nothing: not the
job's outcome, not the worker. With no receivers connected, nothing is built or sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.dispatch import Signal

if TYPE_CHECKING:
    from .models import Job
    from .storage.base import Storage
    from .storage.rows import ClaimedJob, Outcome

# The outcome kinds (django_jobs.storage.rows), named here so that this module imports
# before the app registry is ready: receivers are often connected from a models module.
_SUCCEEDED, _RETRY, _FAILED, _SNOOZE, _CANCELLED = (
    "succeeded", "retry", "failed", "snooze", "cancelled",
)  # fmt: skip

logger = logging.getLogger("django_jobs.signals")

#: A job was stored (``job``); sent on commit of the transaction that stored it.
job_enqueued = Signal()
#: A worker is about to call the job's function (``job``), in the thread that runs it.
job_started = Signal()
#: The attempt succeeded (``job``, ``duration``, ``result``).
job_succeeded = Signal()
#: The attempt failed and the job runs again at ``run_at`` (``job``, ``duration``,
#: ``exception``, ``run_at``).
job_retrying = Signal()
#: The job raised ``Snooze``: it runs again at ``run_at``, no attempt spent (``job``,
#: ``duration``, ``run_at``).
job_snoozed = Signal()
#: The job failed for good (``job``, ``duration``, ``exception``).
job_failed = Signal()
#: The job ended cancelled (``job``, ``duration``: None when it never started,
#: ``exception``: what the cancelled attempt raised, if anything).
job_cancelled = Signal()

_NAMES = {
    id(job_enqueued): "job_enqueued",
    id(job_started): "job_started",
    id(job_succeeded): "job_succeeded",
    id(job_retrying): "job_retrying",
    id(job_snoozed): "job_snoozed",
    id(job_failed): "job_failed",
    id(job_cancelled): "job_cancelled",
}
_ENDS = (job_succeeded, job_retrying, job_snoozed, job_failed, job_cancelled)


def _no_definition(name: str) -> Any:
    return None


#: The sender of a job's signals: its registered definition. Set by the registry, which
#: imports this module (so this one cannot import it back).
definition_of: Callable[[str], Any] = _no_definition


@dataclass(frozen=True, slots=True)
class JobInfo:
    """The job a signal or hook is about, as stored."""

    id: int | None
    name: str
    queue: str
    priority: int
    #: The attempt this is (1 for the first run; 0 for ``job_enqueued``).
    attempt: int
    args: list[Any]
    kwargs: dict[str, Any]
    #: The call's tag (``.using(tag=...)``), "" when it has none.
    tag: str = ""

    @classmethod
    def of_claimed(cls, claimed: ClaimedJob) -> JobInfo:
        return cls(
            claimed.id, claimed.name, claimed.queue, claimed.priority, claimed.attempts,
            claimed.args, claimed.kwargs, claimed.tag or "",
        )  # fmt: skip

    @classmethod
    def of_row(cls, job: Job) -> JobInfo:
        return cls(
            job.pk, job.name, job.queue, job.priority, job.attempts,
            list(job.args or []), dict(job.kwargs or {}), job.tag or "",
        )  # fmt: skip


def listening() -> bool:
    """True when an outcome signal has a receiver: only then is ``record`` asked to
    report what it wrote."""
    return any(signal.receivers for signal in _ENDS)


def send(signal: Signal, name: str, **kwargs: Any) -> None:
    """Send ``signal`` about job ``name``; a receiver that raises is logged, never raised."""
    for receiver, result in signal.send_robust(definition_of(name), **kwargs):
        if isinstance(result, Exception):
            _log_raised(signal, name, receiver, result)


async def asend(signal: Signal, name: str, **kwargs: Any) -> None:
    """``send`` from a coroutine (async jobs run on the worker's event loop)."""
    for receiver, result in await signal.asend_robust(definition_of(name), **kwargs):
        if isinstance(result, Exception):
            _log_raised(signal, name, receiver, result)


def _log_raised(signal: Signal, name: str, receiver: Any, error: Exception) -> None:
    logger.error(
        "[jobs] [%s] receiver %s of %s raised %s: %s (ignored: the job's outcome is unchanged)",
        name, getattr(receiver, "__qualname__", receiver), _NAMES.get(id(signal), "a signal"),
        type(error).__name__, error, exc_info=error, extra={"job_name": name},
    )  # fmt: skip


# -- enqueue ---------------------------------------------------------------------------


def enqueued(jobs: Sequence[Job], alias: str) -> None:
    """``job_enqueued`` for each stored row, on commit of the jobs database's transaction
    (at once outside one): a rolled-back enqueue sends nothing."""
    if not job_enqueued.receivers:
        return
    infos = [JobInfo.of_row(job) for job in jobs if getattr(job, "created", True)]
    if not infos:
        return
    if connections[alias].in_atomic_block:
        transaction.on_commit(partial(_send_enqueued, infos), using=alias)
    else:
        _send_enqueued(infos)


def _send_enqueued(infos: list[JobInfo]) -> None:
    for info in infos:
        send(job_enqueued, info.name, job=info)


# -- outcomes --------------------------------------------------------------------------


def ended(outcomes: Iterable[Outcome]) -> None:
    """The outcome signal of each outcome ``record(..., report=True)`` wrote."""
    for outcome in outcomes:
        kind = outcome.ended
        if not kind:
            continue  # its claim was taken away: whoever took it reports the attempt
        signal, arguments = _BY_KIND[kind]
        claimed = outcome.job
        extra = {name: getattr(outcome, name) for name in arguments}
        send(signal, claimed.name, job=JobInfo.of_claimed(claimed), **extra)


#: The signal of each outcome kind, and the ``Outcome`` attributes it is sent with.
_BY_KIND = {
    _SUCCEEDED: (job_succeeded, ("duration", "result")),
    _RETRY: (job_retrying, ("duration", "exception", "run_at")),
    _FAILED: (job_failed, ("duration", "exception")),
    _SNOOZE: (job_snoozed, ("duration", "run_at")),
    _CANCELLED: (job_cancelled, ("duration", "exception")),
}


def record(storage: Storage, outcomes: list[Outcome], now: datetime, at_commit: bool = True) -> int:
    """``storage.record`` followed by the outcome signals of what it wrote: inside a
    transaction (recovery's) once it commits, unless ``at_commit`` is false (``run_jobs``
    inside a test's transaction, which never commits)."""
    if not listening():
        return storage.record(outcomes, now)
    changed = storage.record(outcomes, now, report=True)
    if at_commit:
        transaction.on_commit(partial(ended, outcomes), using=storage.alias)
    else:
        ended(outcomes)
    return changed


def release(storage: Storage, jobs: Sequence[ClaimedJob], now: datetime) -> int:
    """``storage.release``, and ``job_cancelled`` for the rows it ended cancelled (their
    cancellation was asked for while they waited in a worker)."""
    if not job_cancelled.receivers:
        return storage.release(jobs, now)
    cancelled: list[ClaimedJob] = []
    changed = storage.release(jobs, now, cancelled)
    if cancelled:
        transaction.on_commit(partial(_send_cancelled, cancelled), using=storage.alias)
    return changed


def _send_cancelled(jobs: list[ClaimedJob]) -> None:
    for claimed in jobs:
        info = JobInfo.of_claimed(claimed)
        send(job_cancelled, claimed.name, job=info, duration=None, exception=None)


def cancelled_waiting(alias: str, job_id: int) -> None:
    """``job_cancelled`` for a job ``cancel()`` ended before any worker claimed it, on
    commit of the caller's transaction."""
    if not job_cancelled.receivers:
        return
    from .models import Job

    row = Job.objects.using(alias).filter(pk=job_id).first()
    if row is None:
        return
    info = JobInfo.of_row(row)

    def send_it() -> None:
        send(job_cancelled, info.name, job=info, duration=None, exception=None)

    transaction.on_commit(send_it, using=alias)
