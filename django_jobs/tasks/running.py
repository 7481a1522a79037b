"""The worker's side of a task row: the definition that runs it.

A task row has no ``@job`` registration: its definition is built here from the task
named by the row, found with :func:`~django_jobs.tasks.results.resolve_task` (which
imports only modules of installed apps or ``JOBS["TASK_MODULES"]``). The function the
worker calls loads the row's result, sends ``task_started``, runs the task with Django's
``TaskContext`` when it asks for one, and returns the return value as Django normalises
it; ``task_finished`` is sent when the task reaches SUCCESSFUL or FAILED.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import replace
from typing import Any

from .. import clock
from ..backoff import attempts_spent
from ..conf import jobs_settings
from ..context import JobContext
from ..exceptions import Discard, ResultNotSerializable, Snooze, TaskNotAllowed, TaskNotFound
from ..executor import Interrupted
from ..registry import TASK_PREFIX, JobDefinition
from ..storage import ClaimedJob
from . import framework
from .results import fetch_row, resolve_task, result_from_row

_dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def definition_for(claimed: ClaimedJob) -> JobDefinition[Any, Any]:
    """The definition that runs a task row; :class:`TaskNotAllowed` (or TaskNotFound)
    when the row names no task a worker may import."""
    if framework.available() is None:
        raise TaskNotAllowed(
            "django.tasks is not available (Django 6.0+, or the django-tasks backport)"
        )
    meta = claimed.meta if isinstance(claimed.meta, dict) else {}
    max_attempts = meta.get("max_attempts")
    timeout = meta.get("timeout")

    resolve_task(claimed.name[len(TASK_PREFIX) :])  # refuse before running: a problem

    def run_task(context: JobContext, *args: Any, **kwargs: Any) -> Any:
        return _run(context, max_attempts, claimed.queue, args, kwargs)

    return JobDefinition(
        run_task,
        name=claimed.name,
        queue=claimed.queue,
        max_attempts=max_attempts if isinstance(max_attempts, int) else None,
        timeout=timeout if isinstance(timeout, int | float) else None,
        takes_context=True,
        keep_result=True,
    )


def _run(
    context: JobContext,
    max_attempts: int | None,
    queue: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    api = framework.load()
    row = fetch_row(context.job_id, context.database or jobs_settings().database)
    if row is None:  # deleted while claimed: nothing to run it for
        raise TaskNotFound(f"task row {context.job_id} was deleted while claimed")
    backend = api.task_backends[(row["meta"] or {}).get("backend")]
    sender = type(backend)
    now = clock.now()
    base = result_from_row(row)
    worker_ids = [*base.worker_ids]
    if base.status != api.TaskResultStatus.RUNNING:
        worker_ids.append(row["locked_by"] or "")
    running = result_from_row(
        row,
        task=base.task,
        status=api.TaskResultStatus.RUNNING,
        started_at=base.started_at or now,
        last_attempted_at=now,
        worker_ids=worker_ids,
    )
    api.task_started.send(sender, task_result=running)
    task = base.task
    try:
        if task.takes_context:
            value = task.call(api.TaskContext(task_result=running), *args, **kwargs)
        else:
            value = task.call(*args, **kwargs)
        try:
            value = api.normalize_json(value)
            _dumps(value)
        except (TypeError, ValueError) as exc:
            raise ResultNotSerializable(
                f"task {task.module_path} returned a value that is not JSON: "
                f"{type(value).__name__} ({exc}). Return ids and plain values"
            ) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | Interrupted):
            raise  # the worker stops at once: the attempt does not count
        limit = max_attempts or jobs_settings().policy_for(queue).max_attempts
        if isinstance(exc, Snooze):
            raise  # not an attempt: the task waits and runs again
        final = isinstance(exc, ResultNotSerializable | Discard)
        if final or attempts_spent(context.attempt, limit):
            error = api.TaskError(
                exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
            failed = _finished(api, running, api.TaskResultStatus.FAILED, error)
            api.task_finished.send(sender, task_result=failed)
        raise
    done = _finished(api, running, api.TaskResultStatus.SUCCESSFUL)
    object.__setattr__(done, "_return_value", value)
    api.task_finished.send(sender, task_result=done)
    return value


def _finished(api: Any, running: Any, status: Any, error: Any = None) -> Any:
    errors = [*running.errors, error] if error is not None else list(running.errors)
    return replace(running, status=status, finished_at=clock.now(), errors=errors)
