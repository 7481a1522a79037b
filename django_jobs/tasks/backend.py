"""``JobsBackend``: enqueue ``django.tasks`` tasks as rows of the jobs table, and read
their results back from those rows.

Priorities: Django's run larger first within −100…100, ours lower first. A task of Django
priority ``p`` is stored with priority ``50 − p`` (−50…150): Django's default 0 lands on
``@job``'s default 50, and the order is kept both ways among tasks and jobs alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from .. import clock
from ..calls import store_task
from ..conf import jobs_settings
from ..registry import TASK_PREFIX
from . import framework
from .results import JOBS_PRIORITY_OF_DEFAULT, fetch_row, result_from_row, task_result_id

api = framework.load()

#: Keys of a ``JobsBackend``'s ``OPTIONS``.
OPTION_KEYS = ("MAX_ATTEMPTS", "TIMEOUT", "TASKS")
#: Keys of one entry of ``OPTIONS["TASKS"]`` (per task module path).
TASK_OPTION_KEYS = ("MAX_ATTEMPTS", "TIMEOUT")


def jobs_priority(django_priority: int) -> int:
    """Our priority (lower runs first) for a Django priority (larger runs first)."""
    return JOBS_PRIORITY_OF_DEFAULT - int(django_priority)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobsTask(api.Task):
    """The backend's ``task_class``: ``@task(max_attempts=…, timeout=…)`` (Django 6.1+, and
    the backport) sets django_jobs' own options on one task.

    ``max_attempts``: attempts before the task is FAILED (1: no retry; None: the
    backend's ``OPTIONS``, else the worker group's ``MAX_ATTEMPTS``). ``timeout``:
    seconds one attempt may run (None: ``OPTIONS``, else the group's ``MAX_RUNTIME``).
    """

    max_attempts: int | None = None
    timeout: float | None = None


class JobsBackend(api.BaseTaskBackend):
    """A ``TASKS`` backend whose tasks django_jobs workers run (``manage.py jobs``)."""

    task_class = JobsTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        # Django builds backends at import time and in `manage.py check`: no database here.
        super().__init__(alias, params)
        #: Without QUEUES the backend takes every queue of JOBS["QUEUES"].
        self.explicit_queues = "QUEUES" in params
        if not isinstance(self.options, dict):
            self.options = {}

    # -- validation --------------------------------------------------------------------

    def valid_queues(self) -> set[str]:
        return set(self.queues) if self.explicit_queues else set(jobs_settings().queues)

    def validate_task(self, task: Any) -> None:
        invalid = api.InvalidTask
        if not api.is_module_level_function(task.func):
            raise invalid(
                "Task function must be defined at a module level. "
                f"(Workers import it by its path; {task.func!r} is not.)"
            )
        args = api.get_func_args(task.func)
        if task.takes_context and (not args or args[0] != "context"):
            raise invalid("Task takes context but does not have a first argument of 'context'.")
        priority = task.priority
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int | float)
            or int(priority) != priority
            or not api.MIN_PRIORITY <= priority <= api.MAX_PRIORITY
        ):
            raise invalid(
                f"priority must be a whole number between {api.MIN_PRIORITY} and "
                f"{api.MAX_PRIORITY}. (Got {priority!r}.)"
            )
        run_after = task.run_after
        if run_after is not None:
            if not isinstance(run_after, datetime | timedelta):
                raise invalid(f"run_after must be a datetime or a timedelta, not {run_after!r}.")
            if isinstance(run_after, datetime) and settings.USE_TZ and timezone.is_naive(run_after):
                raise invalid("run_after must be an aware datetime.")
        queues = self.valid_queues()
        if task.queue_name not in queues:
            raise invalid(
                f"Queue '{task.queue_name}' is not valid for backend. "
                f"(Backend {self.alias!r} takes {sorted(queues)!r}.)"
            )
        if task.queue_name not in jobs_settings().queues:
            raise invalid(
                f"Queue {task.queue_name!r} is not in settings.JOBS['QUEUES'] "
                f"{list(jobs_settings().queues)!r}: add it there."
            )
        for name, check in (("max_attempts", _positive_int), ("timeout", _positive_number)):
            value = getattr(task, name, None)
            if value is not None and not check(value):
                raise invalid(f"{name} must be a positive number, not {value!r}.")

    # -- enqueue ---------------------------------------------------------------------

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        run_after = task.run_after
        if isinstance(run_after, timedelta):
            # Django documents a timedelta and then compares it as a datetime: it is a
            # delay from now, and the result's task shows the time it became.
            run_after = timezone.now() + run_after
            task = task.using(run_after=run_after)
        args = api.normalize_json(list(args))
        kwargs = api.normalize_json(dict(kwargs))
        meta: dict[str, Any] = {
            "backend": self.alias,
            "priority": int(task.priority),
            "run_after": None if run_after is None else run_after.isoformat(),
            **self.attempt_options(task),
        }
        job = store_task(
            TASK_PREFIX + task.module_path,
            args,
            kwargs,
            queue=task.queue_name,
            priority=jobs_priority(task.priority),
            run_at=clock.now() if run_after is None else clock.stored(run_after),
            meta=meta,
        )
        result = api.TaskResult(
            task=task,
            id=task_result_id(job.pk, job._state.db or jobs_settings().main_database),
            status=api.TaskResultStatus.READY,
            enqueued_at=job.created_at,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        api.task_enqueued.send(type(self), task_result=result)
        return result

    def attempt_options(self, task: Any) -> dict[str, Any]:
        """``max_attempts`` and ``timeout`` for ``task``: its own (``@task(…)``), else
        ``OPTIONS["TASKS"][module path]``, else ``OPTIONS``; only those that are set."""
        per_task = self.options.get("TASKS")
        per_task = per_task.get(task.module_path) if isinstance(per_task, dict) else None
        per_task = per_task if isinstance(per_task, dict) else {}
        found = {}
        for name, check in (("max_attempts", _positive_int), ("timeout", _positive_number)):
            for value in (
                getattr(task, name, None),
                per_task.get(name.upper()),
                self.options.get(name.upper()),
            ):
                if value is not None and check(value):
                    found[name] = value
                    break
        return found

    # -- results -----------------------------------------------------------------------

    def get_result(self, result_id: str) -> Any:
        row = fetch_row(result_id)
        if row is None or (row["meta"] or {}).get("backend") != self.alias:
            raise api.TaskResultDoesNotExist(result_id)
        return result_from_row(row)

    def check(self, **kwargs: Any) -> list[Any]:
        from ..checks.tasks import backend_checks

        return backend_checks(self.alias, from_backend=True)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
