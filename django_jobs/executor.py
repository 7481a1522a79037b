"""Run one claimed job and decide its outcome. Nothing here raises for a bad job."""

from __future__ import annotations

import asyncio
import builtins
import inspect
import json
import logging
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from . import backoff, clock, exceptions, joblog, registry, signals, tracing
from .backoff import attempts_spent
from .conf import jobs_settings
from .context import JobContext
from .exceptions import (
    Discard,
    InvalidArgument,
    JobNotRegistered,
    ResultNotSerializable,
    Retry,
    Snooze,
    TaskNotAllowed,
    TaskNotFound,
)
from .registry import TASK_PREFIX
from .storage import (
    OUTCOME_CANCELLED,
    OUTCOME_FAILED,
    OUTCOME_RETRY,
    OUTCOME_SNOOZE,
    OUTCOME_SUCCEEDED,
    ClaimedJob,
    Outcome,
)
from .unique import DEFAULT_RULE

logger = logging.getLogger("django_jobs.worker")

_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


class Interrupted(BaseException):
    """The worker was told to stop at once: the job's attempt does not count."""


class Call:
    """A claimed job made ready to run: its definition, arguments and context."""

    __slots__ = (
        "claimed", "definition", "args", "kwargs", "context", "problem", "problem_error",
        "claimed_at", "started", "started_at", "result", "cancel_seen", "_info", "traced",
    )  # fmt: skip

    def __init__(self, claimed: ClaimedJob, context_factory: Callable[..., JobContext]):
        self.claimed = claimed
        self.definition = None
        self.context = None
        self.problem: str | None = None
        #: The exception behind ``problem`` (what the signals report), when there is one.
        self.problem_error: BaseException | None = None
        self._info: signals.JobInfo | None = None
        #: monotonic times of the claim and the start; the start as ``time.time()``
        self.claimed_at = 0.0
        self.started = 0.0
        self.started_at: float | None = None
        #: monotonic time at which the worker learned the job was cancelled (None: not)
        self.cancel_seen: float | None = None
        self.args: list[Any] = []
        self.kwargs: dict[str, Any] = {}
        #: What the job returned (kept only when its definition says ``keep_result``).
        self.result: Any = None
        #: Whether it runs in a span, as the worker decided for its whole claim (None:
        #: ask ``tracing.enabled()`` when it starts).
        self.traced: bool | None = None
        try:
            definition = registry.definition_for(claimed)
        except (JobNotRegistered, TaskNotAllowed, TaskNotFound) as exc:
            self.problem = f"{type(exc).__name__}: {exc}"
            self.problem_error = exc
            return
        args, kwargs = claimed.args, claimed.kwargs
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            self.problem = (
                f"CorruptRow: args must be a JSON list and kwargs a JSON object, "
                f"found {type(args).__name__} and {type(kwargs).__name__}"
            )
            return
        try:
            definition.check_arguments(args, kwargs)
        except TypeError as exc:
            self.problem = f"TypeError: {exc} (the stored arguments no longer fit the function)"
            self.problem_error = exc
            return
        try:
            payload = definition.payload
            if payload is not None:
                args, kwargs = payload.decode(args, kwargs)
        except (InvalidArgument, ImproperlyConfigured) as exc:
            # Recorded like arguments that no longer fit: retried under the job's policy,
            # since a worker of an older or newer release may read it (a rolling deploy).
            self.problem = f"{type(exc).__name__}: {exc}"
            self.problem_error = exc
            return
        self.definition = definition
        if definition.takes_context:
            self.context = context_factory(claimed, definition)
            args = [self.context, *args]
        self.args, self.kwargs = args, kwargs

    def info(self) -> signals.JobInfo:
        """The job as signals and hooks see it (built once, only when one needs it)."""
        if self._info is None:
            self._info = signals.JobInfo.of_claimed(self.claimed)
        return self._info

    @property
    def is_async(self) -> bool:
        return self.definition is not None and self.definition.is_async

    @property
    def timeout(self) -> float | None:
        return self.definition.timeout if self.definition is not None else None


def run_sync(call: Call) -> BaseException | None:
    """Run a sync job in this thread, with its hooks; the exception it raised, or None."""
    if call.problem is not None:
        return None
    if not (tracing.enabled() if call.traced is None else call.traced):
        return _run_sync(call)
    return tracing.run_traced(call.claimed, lambda: _run_sync(call))


def before_perform(call: Call) -> None:
    """What precedes a sync attempt: its start line, job_started, the before_perform hook."""
    joblog.started(call.claimed)
    if signals.job_started.receivers:
        signals.send(signals.job_started, call.claimed.name, job=call.info())
    if call.definition.hooks is not None:
        call.definition.hooks.run("before_perform", call.claimed.name, call.info())


def _run_sync(call: Call) -> BaseException | None:
    hooks = call.definition.hooks
    before_perform(call)
    error: BaseException | None = None
    try:
        result = call.definition.func(*call.args, **call.kwargs)
        if result is not None and inspect.isawaitable(result):  # returned a coroutine
            result = asyncio.run(_await(result))
        call.result = result
    except Interrupted:
        raise
    except Exception as exc:
        error = exc
    except BaseException as exc:  # SystemExit and the like from a job must not stop us
        if isinstance(exc, KeyboardInterrupt):
            raise
        error = exc
    finally:
        tidy_connections()
    if hooks is not None:
        after_perform(call, error)
        tidy_connections()
    return error


def after_perform(call: Call, error: BaseException | None) -> None:
    """The hooks that follow an attempt: after_perform, then on_success or on_failure."""
    hooks, name, info = call.definition.hooks, call.claimed.name, call.info()
    hooks.run("after_perform", name, info)
    if error is None:
        hooks.run("on_success", name, info, call.result)
    elif not isinstance(error, Snooze):
        hooks.run("on_failure", name, info, error)


async def run_async(call: Call) -> BaseException | None:
    if call.problem is not None:
        return None
    if not (tracing.enabled() if call.traced is None else call.traced):
        return await _run_async(call)
    with tracing.job_span(call.claimed) as ended:
        error = await _run_async(call)
        ended(error)
    return error


async def _run_async(call: Call) -> BaseException | None:
    hooks, name = call.definition.hooks, call.claimed.name
    joblog.started(call.claimed)
    if signals.job_started.receivers:
        await signals.asend(signals.job_started, name, job=call.info())
    if hooks is not None:
        await hooks.arun("before_perform", name, call.info())
    error: BaseException | None = None
    try:
        call.result = await call.definition.func(*call.args, **call.kwargs)
    except BaseException as exc:
        # CancelledError raised by the job (or anything else) is the job's error: the
        # worker never cancels a job's task, so it cannot be a request to stop.
        error = exc
    if hooks is not None:
        await hooks.arun("after_perform", name, call.info())
        if error is None:
            await hooks.arun("on_success", name, call.info(), call.result)
        elif not isinstance(error, Snooze):
            await hooks.arun("on_failure", name, call.info(), error)
    return error


async def _await(awaitable: Any) -> Any:
    return await awaitable


def outcome_of(call: Call, error: BaseException | None) -> Outcome:
    """Turn a finished call into the outcome to record, and log it."""
    outcome = _decide(call, error)
    # What the outcome signals report (django_jobs.signals): references, nothing built.
    outcome.duration = time.monotonic() - call.started
    outcome.result = call.result
    if outcome.exception is not None:
        pass  # a ResultNotSerializable made from the job's return value
    elif error is not None:
        outcome.exception = error
    elif call.problem is not None:
        outcome.exception = call.problem_error or exceptions.JobsError(call.problem)
    return outcome


def _decide(call: Call, error: BaseException | None) -> Outcome:
    claimed = call.claimed
    elapsed_ms = (time.monotonic() - call.started) * 1000
    if call.cancel_seen is not None:
        return cancelled_outcome(call, error)
    if call.problem is None and error is None:
        joblog.succeeded(claimed, elapsed_ms / 1000)
        rule = call.definition.unique or DEFAULT_RULE
        outcome = Outcome(
            claimed,
            OUTCOME_SUCCEEDED,
            started_at=call.started_at,
            clear_unique=rule.clears("succeeded"),
        )
        if not call.definition.keep_result:
            return outcome
        try:
            outcome.return_json = _dumps(call.result)
        except (TypeError, ValueError) as exc:
            error = ResultNotSerializable(
                f"{claimed.name} returned a value that is not JSON: "
                f"{type(call.result).__name__} ({exc}). Return ids and plain values"
            )
        else:
            outcome.keep = True
            outcome.log_attempt = claimed.name.startswith(TASK_PREFIX)
            return outcome
    if call.problem is None:
        outcome = controlled(call, error, elapsed_ms)
        if outcome is not None:
            outcome.started_at = call.started_at
            if claimed.name.startswith(TASK_PREFIX) and outcome.kind != OUTCOME_SNOOZE:
                # Retry and Discard end an attempt: the task's result lists it.
                outcome.keep = outcome.log_attempt = True
                outcome.error_class = f"{type(error).__module__}.{type(error).__qualname__}"
            return outcome
    if call.problem is not None:
        text, summary = call.problem, call.problem
        error_class = _problem_class(call.problem)
    else:
        text = "".join(traceback.format_exception(error))
        # The first line of "Type: message": multi-line messages (psycopg's) read best so.
        summary = _summary(error)
        error_class = f"{type(error).__module__}.{type(error).__qualname__}"
    outcome = errored(
        claimed, text, definition=call.definition, elapsed_ms=elapsed_ms, summary=summary,
        error_class=error_class, final=isinstance(error, ResultNotSerializable),
        error=error or call.problem_error,
    )  # fmt: skip
    outcome.started_at = call.started_at
    outcome.exception = error
    return outcome


def cancelled_outcome(call: Call, error: BaseException | None, note: str = "") -> Outcome:
    """A running job whose cancellation reached its worker: recorded as cancelled, whatever
    it did since. ``note`` (else how it ended) follows the cancellation's words."""
    claimed = call.claimed
    if not note:
        after = time.monotonic() - (call.cancel_seen or call.started)
        if error is None:
            note = f"It stopped {after:.1f} s after its worker learned of the cancellation."
        else:
            summary = _summary(error)
            note = (
                f"It ended {after:.1f} s after its worker learned of the cancellation, "
                f"with {summary}"
            )
    joblog.cancelled(claimed, time.monotonic() - call.started if call.started else None, note)
    outcome = Outcome(claimed, OUTCOME_CANCELLED, error="\n" + note)
    outcome.started_at = call.started_at
    if claimed.name.startswith(TASK_PREFIX):  # the task's result lists this attempt too
        outcome.keep = outcome.log_attempt = True
        outcome.error_class = "django_jobs.exceptions.JobCancelled"
    return outcome


def controlled(call: Call, error: BaseException, elapsed_ms: float) -> Outcome | None:
    """The outcome the job asked for (``Retry``, ``Snooze``, ``Discard``) or its
    ``retry_on`` / ``discard_on`` imply; None for a plain error (``errored`` decides)."""
    claimed, definition = call.claimed, call.definition
    took = elapsed_ms / 1000
    if isinstance(error, Snooze):
        return _snoozed(claimed, error, took)
    if isinstance(error, Retry):
        return errored(
            claimed, str(error), definition, elapsed_ms, delay=error.delay, requested=True,
            error=error,
        )  # fmt: skip
    if isinstance(error, Discard):
        return _failed_now(claimed, str(error), str(error), took, error)
    if definition.discard_on and isinstance(error, definition.discard_on):
        summary = _summary(error)
        return _failed_now(
            claimed, _traceback(error) + f"discarded: {summary}", summary, took, error
        )
    if definition.retry_on and not isinstance(error, definition.retry_on):
        summary = _summary(error)
        allowed = ", ".join(cls.__name__ for cls in definition.retry_on)
        return _failed_now(
            claimed,
            _traceback(error) + f"failed without retrying ({allowed} only are retried): {summary}",
            summary, took, error,
        )  # fmt: skip
    return None


def _snoozed(claimed: ClaimedJob, snooze: Snooze, took: float) -> Outcome:
    limit = jobs_settings().max_snoozes
    if claimed.snoozes >= limit:
        text = (
            f"{snooze}; failed: snoozed {claimed.snoozes} times already, the most "
            f'JOBS["MAX_SNOOZES"] allows ({limit})'
        )
        return _failed_now(claimed, text, text, took, snooze)
    run_at = clock.now() + timedelta(seconds=snooze.delay)
    joblog.snoozed(claimed, took, str(snooze), run_at)
    return Outcome(claimed, OUTCOME_SNOOZE, error=str(snooze), run_at=run_at)


def _failed_now(
    claimed: ClaimedJob, text: str, summary: str, took: float, error: BaseException
) -> Outcome:
    """Failed for good at once, whatever attempts are left (``Discard`` and the like)."""
    joblog.failed(claimed, took, None, summary, error, why="not retried")
    return Outcome(
        claimed,
        OUTCOME_FAILED,
        error=text,
        clear_unique=registry.clears_unique_key(claimed.name, "failed"),
    )


def _summary(error: BaseException) -> str:
    return traceback.format_exception_only(error)[0].strip().splitlines()[0]


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + "\n"


def errored(
    claimed: ClaimedJob,
    text: str,
    definition: Any = None,
    elapsed_ms: float | None = None,
    summary: str | None = None,
    error_class: str | None = None,
    final: bool = False,
    delay: float | None = None,
    requested: bool = False,
    error: BaseException | None = None,
    worker: str | None = None,
) -> Outcome:
    """An errored attempt: retried with back-off, or failed once attempts are spent
    (or at once when ``final``).

    ``delay`` (seconds) replaces the job's back-off; ``requested`` marks a ``Retry``
    the job raised, whose ``text`` is already a sentence. ``error`` (the exception, if
    any) and ``worker`` (the worker that ran it, when not this process's) are logged.
    """
    if definition is None:
        definition = registry.all_jobs().get(claimed.name)
    max_attempts = (
        (definition and definition.max_attempts)
        or _task_max_attempts(claimed)
        or jobs_settings().policy_for(claimed.queue).max_attempts
    )
    if summary is None:
        summary = text.strip().splitlines()[-1] if text.strip() else "error"
    took = elapsed_ms / 1000 if elapsed_ms is not None else None
    if final or attempts_spent(claimed.attempts, max_attempts):
        why = "not retried" if final else "no more retries"
        joblog.failed(claimed, took, max_attempts, summary, error, why, worker)
        if requested:
            text += f"; failed: attempt {claimed.attempts} of {max_attempts} was the last"
        outcome = Outcome(
            claimed,
            OUTCOME_FAILED,
            error=text,
            clear_unique=registry.clears_unique_key(claimed.name, "failed"),
        )
    else:
        if delay is None:
            policy = getattr(definition, "backoff", None) or backoff.DEFAULT
            delay, note = backoff.delay_for(policy, claimed.attempts)
            if note:
                # First, so the job's own error stays the last line (the admin's summary).
                text = f"{note}\n{text}"
                logger.error("[jobs] [%s] job %s: %s", claimed.name, claimed.id, note)
        run_at = clock.now() + timedelta(seconds=delay)
        joblog.retrying(claimed, took, max_attempts, run_at, summary, worker)
        outcome = Outcome(claimed, OUTCOME_RETRY, error=text, run_at=run_at)
    if claimed.name.startswith(TASK_PREFIX):
        # A task's result lists every failed attempt: the row is kept, the attempt logged.
        outcome.keep = outcome.log_attempt = True
        outcome.error_class = error_class or _problem_class(text)
    return outcome


def _task_max_attempts(claimed: ClaimedJob) -> int | None:
    """``max_attempts`` a ``django.tasks`` row was enqueued with (in its meta), if any."""
    meta = claimed.meta
    return meta.get("max_attempts") if isinstance(meta, dict) else None


def _problem_class(text: str) -> str:
    """The exception class path of an attempt that failed without a Python exception:
    a problem found before running ("JobNotRegistered: …"), a timeout, a lost worker."""
    if text.startswith("worker "):  # recovery: "worker X died while running this job"
        return "django_jobs.exceptions.WorkerLost"
    name = text.partition(":")[0].strip()
    if name.isidentifier() and isinstance(getattr(exceptions, name, None), type):
        return f"django_jobs.exceptions.{name}"
    if name.isidentifier() and isinstance(getattr(builtins, name, None), type):
        return f"builtins.{name}"
    return "django_jobs.exceptions.JobsError"  # e.g. "CorruptRow: …", which is no class


def tidy_connections() -> None:
    """After a job: roll back what it left open and drop connections it broke.

    The worker keeps its connections between jobs whatever CONN_MAX_AGE says (a new
    connection per job costs more than most jobs); only broken ones are closed.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        try:
            # The connection is open: get_autocommit() would only add its async check.
            if conn.in_atomic_block or not conn.autocommit:
                conn.in_atomic_block = False
                conn.savepoint_ids = []
                conn.needs_rollback = False
                conn.rollback()
                conn.set_autocommit(True)
            if conn.errors_occurred and not conn.is_usable():
                conn.close()
            conn.errors_occurred = False
        except Exception:
            conn.close()
