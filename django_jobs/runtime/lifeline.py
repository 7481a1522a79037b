"""Recovery: jobs whose worker died, and jobs past their own deadline.

The one liveness rule: a job is taken from its worker only when

* that worker is dead: no worker row with a heartbeat newer than ``HEARTBEAT_TIMEOUT``
  (one query for all live workers, not one per row); or
* the job's own deadline (its timeout counted from when it started, written by the
  worker that runs it) passed more than ``HEARTBEAT_TIMEOUT`` ago: its worker's watchdog
  should have stopped it and did not.

A group's ``MAX_RUNTIME`` never takes a job from a live worker: it is only the timeout the
worker applies to jobs without one of their own.

What happens to a recovered job depends on whether it had started (``started_at``): a
started job is charged an errored attempt ("worker X died while running this job") and
retried with back-off or failed; a job that was claimed but never started is given back
at once, unspent, with no error. Every write is guarded by the row's claim token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from .. import clock, signals
from ..conf import jobs_settings
from ..exceptions import JobTimeout, WorkerLost
from ..executor import errored
from ..models import Worker
from ..storage import HeldRow, Outcome, get_storage

logger = logging.getLogger("django_jobs.lifeline")

#: Rows one recovery pass looks at; passes repeat while they find a full batch.
BATCH = 200


def recover(alias: str | None = None) -> int:
    """One recovery pass over every queue of jobs database ``alias`` (default: this
    process's); returns how many jobs it recovered."""
    settings = jobs_settings()
    storage = get_storage(alias)
    timeout = timedelta(seconds=settings.heartbeat_timeout)
    workers = Worker.objects.using(storage.alias)
    with storage.write_transaction():
        # Heartbeats are the database's time: judged by its clock, not this host's.
        now = storage.database_now()
        cutoff = now - timeout
        live = list(workers.filter(heartbeat_at__gte=cutoff).values_list("identity", flat=True))
        rows = storage.recoverable(live, cutoff, now - timeout, BATCH)
        recovered = settle(rows, set(live), storage=storage)
    workers.filter(heartbeat_at__lt=cutoff).delete()
    # Recovery freed the slots of the jobs it took back, in the statements above; this
    # catches keys left with free slots some other way (a running job deleted by hand).
    storage.unblock_stranded(now)
    return recovered


def recover_all() -> int:
    """Recovery passes until nothing is left to recover (``jobs workoff``)."""
    total = 0
    while True:
        recovered = recover()
        total += recovered
        if recovered < BATCH:
            return total


def recover_worker_jobs(identity: str, how: str = "", alias: str | None = None) -> int:
    """Recover every job still held by ``identity``, a worker known to be gone, in its
    database ``alias`` (default: this process's jobs database)."""
    storage = get_storage(alias)
    return settle(storage.held_by(identity), set(), how, storage)


def settle(rows: Iterable[HeldRow], live: set[str], how: str = "", storage=None) -> int:
    """Give back the rows that never started; charge the started ones an attempt."""
    unstarted, outcomes = [], []
    now = clock.now()
    for row in rows:
        if row.started_at is None:
            unstarted.append(row.job)
            continue
        if row.locked_by in live:
            reason = (
                f"JobTimeout: still running past its deadline ({row.expires_at:%Y-%m-%d %H:%M:%S}"
                f" UTC) plus {jobs_settings().heartbeat_timeout:g} s; worker {row.locked_by} did"
                " not stop it, so it was taken away and may still be running there"
            )
        else:
            reason = f"worker {row.locked_by} died while running this job"
            if how:
                reason += f" ({how})"
        # What the attempt "raised", and how long it ran before this (logs and signals).
        kind = JobTimeout if row.locked_by in live else WorkerLost
        error = kind(reason.removeprefix("JobTimeout: "))
        took = _seconds_since(row.started_at, now)
        outcome: Outcome = errored(
            row.job, reason, elapsed_ms=None if took is None else took * 1000, error=error,
            worker=row.locked_by,
        )  # fmt: skip
        outcome.started_at = row.started_at
        outcome.exception = error
        outcome.duration = took
        outcomes.append(outcome)
    storage = storage or get_storage()
    given_back = signals.release(storage, unstarted, now) if unstarted else 0
    charged = signals.record(storage, outcomes, now) if outcomes else 0
    if given_back:
        logger.info("[jobs] gave back %s job(s) a dead worker held but never started", given_back)
    for outcome in outcomes:
        logger.warning(
            "[jobs] [%s] job %s recovered: %s",
            outcome.job.name, outcome.job.id, outcome.error.splitlines()[0],
        )  # fmt: skip
    return given_back + charged


def _seconds_since(started_at: datetime, now: datetime) -> float | None:
    try:
        return max((now - started_at).total_seconds(), 0.0)
    except TypeError:  # an aware and a naive datetime (USE_TZ changed under a live row)
        return None
