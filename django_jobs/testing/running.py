"""``run_jobs()``: enqueued jobs performed in the test's own thread and transaction, with
the worker's claim, outcome and record code."""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.db import DatabaseError, connections, transaction

from .. import clock, signals, tracing
from ..conf import jobs_settings
from ..context import JobContext
from ..exceptions import UnknownQueue
from ..executor import Call, after_perform, before_perform, outcome_of
from ..models import Job
from ..pausing import claim_filter
from ..registry import JobDefinition
from ..storage import (
    OUTCOME_FAILED,
    OUTCOME_RETRY,
    OUTCOME_SNOOZE,
    ClaimedJob,
    Storage,
    get_storage,
    job_channel,
)

#: Rows claimed per statement; a round claims again while claims come back full.
CLAIM_LIMIT = 1000


@dataclass(frozen=True)
class JobError:
    """One errored attempt seen by :func:`run_jobs`."""

    job_id: int
    name: str
    attempt: int
    #: The traceback, as stored in ``Job.last_error``.
    error: str
    #: True when the job failed for good; False when it was scheduled to retry.
    final: bool

    def __str__(self) -> str:
        lines = self.error.strip().splitlines()
        last = lines[-1] if lines else "error"
        what = "failed" if self.final else "will retry"
        return f"{self.name} #{self.job_id} attempt {self.attempt} ({what}): {last}"


@dataclass
class RunResult:
    """What :func:`run_jobs` did: attempts by outcome, rounds, and every error."""

    succeeded: int = 0
    retried: int = 0
    failed: int = 0
    rounds: int = 0
    errors: list[JobError] = field(default_factory=list)
    #: Runs that ended in ``Snooze``: rescheduled without spending an attempt, so not
    #: counted in ``attempts``.
    snoozed: int = 0

    @property
    def attempts(self) -> int:
        return self.succeeded + self.retried + self.failed

    def __str__(self) -> str:
        text = (
            f"{self.attempts} attempts in {self.rounds} rounds: {self.succeeded} succeeded, "
            f"{self.retried} to retry, {self.failed} failed"
        )
        if self.snoozed:
            text += f"; {self.snoozed} snoozed"
        return "\n  ".join([text, *map(str, self.errors)])


def run_jobs(
    queue: str | Iterable[str] | None = None,
    *,
    max_rounds: int = 100,
    include_scheduled: bool = False,
) -> RunResult:
    """Perform enqueued jobs now, in this thread, and return what happened.

    Each round claims the jobs that are ready and performs them in claim order
    (priority, run_at, id); jobs they enqueue run in the next round. Rounds go on until
    one finds nothing ready, or ``max_rounds`` rounds have run. ``queue`` limits the
    run to one queue or a list of queues. Paused queues (``django_jobs.pause``) are left
    alone, as workers leave them; cancelled jobs never run.

    With ``include_scheduled=True``, each round first makes scheduled jobs due, those
    enqueued with ``wait`` and retries alike: a job that keeps failing is then attempted
    until its attempts are spent, with the real attempt limit. ``Retry``, ``Snooze`` and
    ``Discard`` (and ``retry_on`` / ``discard_on``) are honoured as in a worker: a
    snoozed job gets its attempt back and comes due again later (counted in
    ``RunResult.snoozed``).

    A job that raises keeps the database writes it made before raising, as in a worker
    (which runs jobs in autocommit), except when its error broke the test's transaction
    (a failed statement on PostgreSQL, or an error inside ``atomic()``): then its writes
    are rolled back so that the transaction stays usable.
    """
    if not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValueError(f"max_rounds must be a positive int, not {max_rounds!r}")
    settings = jobs_settings()
    queues = _queues(queue, settings.queues)
    # Queues in databases of their own (JOBS["QUEUES"]): each round visits every one.
    runners = [_Runner(get_storage(alias), settings) for alias in settings.databases]
    result = RunResult()
    # A test runs its jobs now: rate limits pace workers, not run_jobs.
    paced = [runner.storage.paced for runner in runners]
    for runner in runners:
        runner.storage.paced = False
    try:
        while result.rounds < max_rounds:
            ran = [_round(runner, queues, include_scheduled, result) for runner in runners]
            if not any(ran):
                break
            result.rounds += 1
    finally:
        for runner, was in zip(runners, paced, strict=True):
            runner.storage.paced = was
    return result


def _round(runner: _Runner, queues, include_scheduled: bool, result: RunResult) -> bool:
    """One round in one database; False when it found nothing to run."""
    if include_scheduled:
        _make_due(runner.storage.alias, queues)
    # Paused queues are left alone, as workers leave them.
    selection = claim_filter(queues, runner.storage.paused_queues())
    if selection is None:
        return False
    claimed = runner.claim(*selection)
    if not claimed:
        return False
    while claimed:
        for job in claimed:
            runner.perform(job, result)
        if len(claimed) < CLAIM_LIMIT:
            break
        claimed = runner.claim(*selection)
    return True


def _queues(queue: str | Iterable[str] | None, known: tuple[str, ...]) -> tuple[str, ...] | None:
    if queue is None:
        return None
    names = (queue,) if isinstance(queue, str) else tuple(queue)
    for name in names:
        if name not in known:
            raise UnknownQueue(name, known)
    return names


def _make_due(alias: str, queues: tuple[str, ...] | None) -> None:
    later = Job.objects.using(alias).later()
    if queues is not None:
        later = later.filter(queue__in=queues)
    later.update(run_at=clock.now())


class _Runner:
    """Performs claimed jobs one by one and records each outcome at once."""

    def __init__(self, storage: Storage, settings) -> None:
        self.storage = storage
        self.settings = settings
        self.identity = f"testing-{os.getpid()}-{threading.get_ident()}"

    def claim(self, queues: tuple[str, ...] | None, exclude: tuple[str, ...]) -> list[ClaimedJob]:
        return self.storage.claim(self.identity, queues, CLAIM_LIMIT, clock.now(), exclude)

    def context(self, claimed: ClaimedJob, definition: JobDefinition) -> JobContext:
        storage = self.storage

        def report(percent: int, message: str) -> None:
            # On the test's connection (a worker uses one of its own): a test's
            # transaction would hide the row from any other connection.
            storage.set_progress(claimed, percent, message)

        def publisher(payload: str) -> None:
            storage.publish(job_channel(claimed.id), payload, clock.now())

        return JobContext(
            job_id=claimed.id,
            name=claimed.name,
            attempt=claimed.attempts,
            report=report,
            publisher=publisher,
            database=storage.alias,
        )

    def perform(self, claimed: ClaimedJob, result: RunResult) -> None:
        call = Call(claimed, self.context)
        call.started = time.monotonic()
        call.started_at = time.time()
        if call.context is not None and call.timeout:
            call.context.deadline = call.started + call.timeout
        error = None if call.problem is not None else _traced(call)
        outcome = outcome_of(call, error)
        signals.record(self.storage, [outcome], clock.now(), at_commit=False)
        if outcome.kind == OUTCOME_SNOOZE:
            result.snoozed += 1
            return
        if outcome.kind == OUTCOME_RETRY:
            result.retried += 1
        elif outcome.kind == OUTCOME_FAILED:
            result.failed += 1
        else:
            result.succeeded += 1
            return
        result.errors.append(
            JobError(
                claimed.id,
                claimed.name,
                claimed.attempts,
                outcome.error,
                final=outcome.kind == OUTCOME_FAILED,
            )
        )


def _traced(call: Call) -> BaseException | None:
    """``_invoke`` in the job's span when tracing is on, as a worker runs it."""
    return tracing.run_traced(call.claimed, lambda: _invoke(call))


def _invoke(call: Call) -> BaseException | None:
    """Run the job's function inside savepoints; the exception it raised, or None.

    Unlike ``executor.run_sync`` this leaves the connections alone afterwards: tidying
    them would roll back the test's transaction.
    """
    savepoints = [
        (conn.alias, _savepoint(using=conn.alias))
        for conn in connections.all(initialized_only=True)
        if conn.in_atomic_block
    ]
    error: BaseException | None = None
    hooks = call.definition.hooks
    before_perform(call)
    try:
        value = call.definition.func(*call.args, **call.kwargs)
        if inspect.isawaitable(value):
            # async_to_sync, not asyncio.run: the job's sync_to_async database calls then
            # run in this thread, on the connection that holds the test's transaction.
            value = async_to_sync(_await)(value)
        call.result = value
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit from a job is its error, as in a worker
        error = exc
    for alias, savepoint in reversed(savepoints):
        _settle(alias, savepoint)
    if hooks is not None:
        after_perform(call, error)
    return error


# Django 6.1 renamed savepoint() to savepoint_create() and deprecated the old name.
_savepoint = getattr(transaction, "savepoint_create", None) or transaction.savepoint


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _settle(alias: str, savepoint: str) -> None:
    """Keep the job's writes if the transaction is still usable, else go back before them."""
    connection = connections[alias]
    if connection.needs_rollback:  # the job caught an error that escaped an atomic()
        connection.needs_rollback = False  # or Django refuses the rollback statement
        transaction.savepoint_rollback(savepoint, using=alias)
        return
    try:
        transaction.savepoint_commit(savepoint, using=alias)
    except DatabaseError:
        # PostgreSQL refuses everything after a failed statement except going back to a
        # savepoint from before it.
        transaction.savepoint_rollback(savepoint, using=alias)


# -- what is enqueued ------------------------------------------------------------------------
