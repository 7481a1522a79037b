"""Cancelling jobs: ``cancel(job_id)``, ``Job.cancel()``, ``jobs cancel`` and the admin.

What a cancellation does depends on where the job is, and the database decides it:

* **not claimed** (scheduled, ready, or due later): one statement ends it at once. It
  never runs; it is kept as cancelled, with who and why in ``last_error``.
* **held by a worker**: its row is marked (``cancelled_at``). The worker learns of it
  within its poll interval (at once on PostgreSQL), its context's ``should_stop()`` turns
  true, and if the job still runs ``JOBS["CANCEL_GRACE"]`` seconds later the worker
  process is stopped and replaced, as after a hard timeout. However it ends, it is
  recorded as cancelled and never retried, except that a job that succeeded before its
  worker learned of the cancellation is recorded as succeeded: its work was done.
* **already ended** (succeeded, failed, cancelled): nothing changes, and the result says so.

A cancelled job leaves the claimable rows through ``failed_at`` (so no claim index
changes) and is told from a failed one by ``cancelled_at``. Retrying it (admin) runs it
again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import clock
from .conf import jobs_settings
from .exceptions import JobNotFound, JobsError
from .models import Job, JobStatus
from .signals import cancelled_waiting
from .storage import get_storage

logger = logging.getLogger("django_jobs.cancelling")

#: ``Cancellation.outcome``: the job was waiting and will never run.
CANCELLED = "cancelled"
#: The job is running: its worker is told to stop it (or was told before this call).
STOPPING = "stopping"
#: The job had already ended: nothing was changed.
ENDED = "ended"

#: Rounds of "not waiting any more, not running yet" before giving up (a job claimed or
#: given back between two statements; each round takes a few milliseconds).
ROUNDS = 5


@dataclass(frozen=True)
class Cancellation:
    """What :func:`cancel` did to one job."""

    job_id: int
    name: str
    #: ``CANCELLED``, ``STOPPING`` or ``ENDED``.
    outcome: str
    #: The job's status after the call (``JobStatus``).
    status: str
    #: False when this call changed nothing (the job had ended, or was being cancelled).
    changed: bool
    message: str

    @property
    def cancelled(self) -> bool:
        """True when the job is cancelled for good now (it was waiting)."""
        return self.outcome == CANCELLED

    def __str__(self) -> str:
        return self.message


def describe(by: str = "", reason: str = "", running: bool = False) -> str:
    """The words stored in ``last_error``: "Cancelled by alice while running: reason"."""
    text = "Cancelled"
    if by:
        text += f" by {by}"
    if running:
        text += " while running"
    if reason:
        text += f": {reason}"
    return text


def cancel(
    job_id: int, *, by: str = "", reason: str = "", using: str | None = None
) -> Cancellation:
    """Cancel job ``job_id``; see the module's documentation for what happens when.

    ``by`` and ``reason`` are kept with the job (``last_error``). Raises
    :class:`~django_jobs.JobNotFound` when there is no such job, ``TypeError`` for an id
    that is not an int.
    """
    job_id = _checked_id(job_id)
    by, reason = _text(by, "by"), _text(reason, "reason")
    storage = get_storage(using)
    for _ in range(ROUNDS):
        now = clock.now()
        if storage.cancel_waiting(job_id, describe(by, reason), now):
            cancelled_waiting(storage.alias, job_id)
            return _result(storage.alias, job_id, CANCELLED, True, by, reason)
        if storage.request_cancel(job_id, describe(by, reason, running=True), now):
            return _result(storage.alias, job_id, STOPPING, True, by, reason)
        row = _row(storage.alias, job_id)
        if row is None:
            raise JobNotFound(job_id)
        if row.failed_at is not None or row.finished_at is not None:
            return _result(storage.alias, job_id, ENDED, False, by, reason, row)
        if row.locked_at is not None and row.cancelled_at is not None:
            return _result(storage.alias, job_id, STOPPING, False, by, reason, row)
        # Claimed or given back between the two statements: look again.
    raise JobsError(f"job {job_id} kept changing state; try again")


Job.canceller = cancel


def _checked_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise TypeError(f"a job id is an int, not {job_id!r}")
    return job_id


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {value!r}")
    return value.strip()


def _row(alias: str, job_id: int) -> Job | None:
    return (
        Job.objects.using(alias)
        .filter(pk=job_id)
        .only("id", "name", "locked_at", "locked_by", "failed_at", "finished_at", "cancelled_at")
        .first()
    )


def _result(
    alias: str, job_id: int, outcome: str, changed: bool, by: str, reason: str, row=None
) -> Cancellation:
    row = row or _row(alias, job_id)
    if row is None:  # deleted right after (a succeeded job's row, pruning)
        status, name = JobStatus.SUCCEEDED, ""
    else:
        status, name = row.status, row.name
    label = f"Job {job_id}" + (f" ({name})" if name else "")
    if outcome == CANCELLED:
        message = f"{label} cancelled: it will never run."
    elif outcome == STOPPING and changed:
        grace = jobs_settings().cancel_grace
        message = (
            f"{label} is running on {row.locked_by if row else 'a worker'}: it is told to "
            f"stop, and its worker process is stopped if it still runs {grace:g} s later. "
            "It is then recorded as cancelled."
        )
    elif outcome == STOPPING:
        message = f"{label} is already being cancelled: nothing changed."
    else:
        message = f"{label} had already {_ended(status)}: nothing changed."
    if changed:
        logger.info("[jobs] %s%s", message, f" ({describe(by, reason)})" if by or reason else "")
    return Cancellation(job_id, name, outcome, str(status), changed, message)


def _ended(status: str) -> str:
    return {
        JobStatus.SUCCEEDED: "succeeded",
        JobStatus.FAILED: "failed",
        JobStatus.CANCELLED: "been cancelled",
    }.get(status, "ended")
