"""Helpers for the tests of a project that uses django_jobs.

``run_jobs()`` performs enqueued jobs in the test's own thread and transaction, with the
worker's claim, outcome and record code, so retries, back-off, attempt limits and the
DELETE_* options behave as in production. ``assert_enqueued()`` and friends read the jobs
table. See docs/howto/testing.md.

Why not a real worker in-process: a worker starts heartbeat and watchdog threads with
database connections of their own, which cannot see the rows of an uncommitted test
transaction (and on SQLite would wait for its write lock).
"""

from __future__ import annotations

import inspect
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.db import DatabaseError, connections, transaction
from django.db.models import Max, QuerySet

from . import clock, registry, signals, tracing
from .conf import jobs_settings
from .context import JobContext
from .exceptions import UnknownQueue
from .executor import Call, after_perform, before_perform, outcome_of
from .models import Job
from .pausing import claim_filter
from .payloads import as_stored
from .registry import JobDefinition
from .storage import (
    OUTCOME_FAILED,
    OUTCOME_RETRY,
    OUTCOME_SNOOZE,
    ClaimedJob,
    Storage,
    get_storage,
    job_channel,
)

__all__ = [
    "JobError",
    "RunResult",
    "assert_enqueued",
    "assert_not_enqueued",
    "capture_jobs",
    "enqueued_jobs",
    "run_jobs",
]

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


def _job_name(job: Any) -> str:
    if isinstance(job, JobDefinition):
        return job.name
    if isinstance(job, str):
        return job
    raise TypeError(f"pass a job (the @job-decorated function) or its name, not {job!r}")


def enqueued_jobs(job: Any = None, *, queue: str | None = None) -> QuerySet[Job]:
    """The jobs waiting to run (due now or scheduled later), in the order enqueued."""
    rows = Job.objects.using(jobs_settings().database).scheduled()
    if job is not None:
        rows = rows.filter(name=_job_name(job))
    if queue is not None:
        rows = rows.filter(queue=queue)
    return rows.order_by("id")


def _as_stored(value: Any, kind: str) -> Any:
    """``value`` as it reads back from the jobs table (tuples become lists, …)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"expected {kind} {value!r} cannot be stored as JSON, so no job has them: {exc}"
        ) from None


class _Expectation:
    def __init__(self, job: Any, args: Any, kwargs: Any, queue: str | None) -> None:
        self.name = _job_name(job)
        args, kwargs = as_stored(registry.find(self.name), args, kwargs)  # typed payloads
        self.args = None if args is None else _as_stored(list(args), "args")
        self.kwargs = None if kwargs is None else _as_stored(dict(kwargs), "kwargs")
        self.queue = queue

    def differences(self, row: Job) -> list[str]:
        found = []
        if self.args is not None and row.args != self.args:
            found.append(f"args {_dump(row.args)} != {_dump(self.args)}")
        if self.kwargs is not None and row.kwargs != self.kwargs:
            found.append(f"kwargs {_dump(row.kwargs)} != {_dump(self.kwargs)}")
        if self.queue is not None and row.queue != self.queue:
            found.append(f"queue {row.queue!r} != {self.queue!r}")
        return found

    def describe(self) -> str:
        args = "…" if self.args is None else ", ".join(map(_dump, self.args))
        kwargs = (
            ""
            if self.kwargs is None
            else ", ".join(f"{k}={_dump(v)}" for k, v in self.kwargs.items())
        )
        call = f"{self.name}({', '.join(p for p in (args, kwargs) if p)})"
        return call + (f" on queue {self.queue!r}" if self.queue is not None else "")

    def report(self, headline: str, rows: list[Job]) -> str:
        lines = [headline]
        if rows:
            lines.append(f"Enqueued calls of {self.name} ({len(rows)}):")
            for row in rows:
                differences = self.differences(row)
                verdict = "; ".join(differences) if differences else "matches"
                lines.append(f"  #{row.pk} {_call(row)}  -- {verdict}")
        else:
            lines.append(f"No call of {self.name} is enqueued.")
        others = _other_names(self.name)
        if others:
            lines.append("Other jobs enqueued: " + ", ".join(others))
        return "\n".join(lines)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _call(row: Job) -> str:
    parts = [*map(_dump, row.args), *(f"{k}={_dump(v)}" for k, v in row.kwargs.items())]
    when = "" if row.run_at is None or row.run_at <= clock.now() else f" at {row.run_at}"
    short = row.name.rsplit(".", 1)[-1]
    return f"{short}({', '.join(parts)}) queue={row.queue!r} priority={row.priority}{when}"


def _other_names(name: str, limit: int = 10) -> list[str]:
    rows = enqueued_jobs().exclude(name=name).values_list("name", flat=True)
    counts: dict[str, int] = {}
    for other in rows[:1000]:
        counts[other] = counts.get(other, 0) + 1
    shown = [f"{n} x{c}" for n, c in sorted(counts.items())[:limit]]
    return shown + (["…"] if len(counts) > limit else [])


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def assert_enqueued(
    job: Any,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
    count: int | None = None,
) -> list[Job]:
    """Assert that ``job`` is enqueued (``count`` times exactly, if given); return the rows.

    ``args``, ``kwargs`` and ``queue`` narrow the match when given; arguments compare as
    stored (JSON), so a tuple matches a list. The error lists every enqueued call of the
    job and how it differs from the expected one.
    """
    expected = _Expectation(job, args, kwargs, queue)
    rows = list(enqueued_jobs(expected.name))
    matching = [row for row in rows if not expected.differences(row)]
    if (count is None and matching) or len(matching) == count:
        return matching
    wanted = "at least once" if count is None else _times(count)
    raise AssertionError(
        expected.report(
            f"Expected {expected.describe()} to be enqueued {wanted}; "
            f"{len(matching)} enqueued call(s) match.",
            rows,
        )
    )


def assert_not_enqueued(
    job: Any,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
) -> None:
    """Assert that no enqueued call of ``job`` matches the given arguments and queue."""
    expected = _Expectation(job, args, kwargs, queue)
    rows = list(enqueued_jobs(expected.name))
    matching = [row for row in rows if not expected.differences(row)]
    if matching:
        raise AssertionError(
            expected.report(
                f"Expected {expected.describe()} not to be enqueued; "
                f"{len(matching)} enqueued call(s) match.",
                rows,
            )
        )


@contextmanager
def capture_jobs(job: Any = None) -> Iterator[list[Job]]:
    """Collect the jobs enqueued inside the ``with`` block (of ``job``, if given).

    The list is filled when the block ends, with the rows enqueued in it that still
    exist then (a job run and deleted inside the block is not in it).
    """
    alias = jobs_settings().database
    name = None if job is None else _job_name(job)
    before = Job.objects.using(alias).aggregate(last=Max("id"))["last"] or 0
    captured: list[Job] = []
    yield captured
    rows = Job.objects.using(alias).filter(id__gt=before)
    if name is not None:
        rows = rows.filter(name=name)
    captured.extend(rows.order_by("id"))
