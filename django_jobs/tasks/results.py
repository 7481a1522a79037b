"""Task rows as Django's ``TaskResult``, and the tasks they name.

A row's state maps onto ``TaskResultStatus`` so: finished → SUCCESSFUL, failed (or
cancelled) → FAILED, locked by a worker that started it → RUNNING, anything else →
READY (new, waiting for a retry, or claimed and not started yet). ``errors`` and
``worker_ids`` come from ``attempt_log`` (one entry per finished attempt, written with
the outcome), plus the running attempt's worker while one runs.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

from django.apps import apps

from ..conf import jobs_settings
from ..exceptions import TaskNotAllowed, TaskNotFound
from ..models import Job
from ..registry import TASK_PREFIX
from . import framework

#: Our priority of Django's default priority (0), the same as ``@job``'s default.
JOBS_PRIORITY_OF_DEFAULT = 50

#: The columns a result is built from.
ROW_FIELDS = (
    "id", "name", "args", "kwargs", "queue", "priority", "locked_at", "locked_by",
    "started_at", "finished_at", "failed_at", "created_at", "return_value",
    "attempt_log", "meta",
)  # fmt: skip


def task_result_id(pk: int, alias: str) -> str:
    """The ``TaskResult`` id of row ``pk`` in jobs database ``alias``.

    The row's id alone in ``JOBS["DATABASE"]`` (the ids handed out before queues could
    live elsewhere keep their form); ``"<alias>:<id>"`` in another jobs database, whose
    ids count from 1 too: the alias says which row the id means.
    """
    return str(pk) if alias == jobs_settings().main_database else f"{alias}:{pk}"


def _pk(text: str) -> int | None:
    # Exactly the ids enqueue() hands out: int() would also take " 7", "+7" and "7_0".
    if not (text.isascii() and text.isdigit() and text[0] != "0" and len(text) < 19):
        return None
    return int(text)


def fetch_row(result_id: Any, alias: str | None = None) -> dict[str, Any] | None:
    """The task row whose id is ``result_id`` (a TaskResult id), or None; the row's
    ``"database"`` is the alias it was read from.

    ``alias``: the database known to hold it (a worker running it), read alone.
    Otherwise an id ``"<alias>:<id>"`` is read in that jobs database, and a bare id in
    ``JOBS["DATABASE"]``, then in the other jobs databases in their order, taking a row
    only where its queue lives: bare ids were also handed out for tasks of a queue in
    another database before ids named it.
    """
    text = str(result_id)
    settings = jobs_settings()
    home, _, number = text.rpartition(":")
    pk = _pk(number)
    if pk is None:
        return None
    if alias is not None:
        if home and home != alias:
            return None
        return _read(pk, alias)
    if home:
        if home == settings.main_database or home not in settings.databases:
            return None  # not an id enqueue() hands out: the main database's are bare
        return _read(pk, home)
    row = _read(pk, settings.main_database)
    if row is not None:
        return row
    for other in settings.databases[1:]:
        row = _read(pk, other)
        if row is not None and settings.database_for(row["queue"]) == other:
            return row
    return None


def _read(pk: int, alias: str) -> dict[str, Any] | None:
    row = (
        Job.objects.using(alias)
        .filter(pk=pk, name__startswith=TASK_PREFIX)
        .values(*ROW_FIELDS)
        .first()
    )
    if row is not None:
        row["database"] = alias
    return row


def allowed_module(module: str) -> bool:
    """Whether workers may import ``module``: part of an installed app, or of a package
    named in ``JOBS["TASK_MODULES"]``."""
    roots = [config.name for config in apps.get_app_configs()]
    roots += jobs_settings().task_modules
    return any(module == root or module.startswith(root + ".") for root in roots)


def resolve_task(module_path: str) -> Any:
    """The ``Task`` object at ``module_path``; its module is imported only when allowed."""
    api = framework.load()
    parts = module_path.split(".")
    module = None
    # module_path is the function's module plus its qualified name: try the longest
    # module first (a function nested in a class has a dotted qualified name).
    for cut in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:cut])
        if not allowed_module(name):
            raise TaskNotAllowed(
                f"Task {module_path!r} is not in an installed app nor in a module of "
                "settings.JOBS['TASK_MODULES']: it was not imported. Add its app to "
                "INSTALLED_APPS or its module to TASK_MODULES"
            )
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            if isinstance(exc, ModuleNotFoundError) and exc.name == name and cut > 1:
                continue  # a class in the qualified name: its module is one level up
            raise TaskNotFound(f"Task {module_path!r}: importing {name} failed: {exc}") from None
        obj: Any = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        if obj is None:
            raise TaskNotFound(
                f"Task {module_path!r} is not found: {name} has no {'.'.join(parts[cut:])} "
                "(renamed or removed?)"
            )
        if not isinstance(obj, api.Task):
            raise TaskNotAllowed(
                f"{module_path!r} is a {type(obj).__name__}, not a task declared with @task: "
                "it was not run"
            )
        return obj
    raise TaskNotFound(f"Task {module_path!r} is not found: no module of it can be imported")


def status_of(row: dict[str, Any]) -> Any:
    status = framework.load().TaskResultStatus
    if row["finished_at"] is not None:
        return status.SUCCESSFUL
    if row["failed_at"] is not None:
        return status.FAILED
    if row["locked_at"] is not None and row["started_at"] is not None:
        return status.RUNNING
    return status.READY


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def task_of(row: dict[str, Any]) -> Any:
    """The row's task as it was enqueued: its priority, queue, run_after and backend."""
    api = framework.load()
    meta = row["meta"] or {}
    task = resolve_task(row["name"][len(TASK_PREFIX) :])
    priority = max(
        api.MIN_PRIORITY,
        min(api.MAX_PRIORITY, JOBS_PRIORITY_OF_DEFAULT - row["priority"]),
    )
    changed = task.using(priority=priority, queue_name=row["queue"], backend=meta.get("backend"))
    run_after = _when(meta.get("run_after"))
    if run_after is not None:
        changed = changed.using(run_after=run_after)
    return changed


def result_from_row(row: dict[str, Any], task: Any = None, **changes: Any) -> Any:
    """The ``TaskResult`` of a task row; ``changes`` override fields (the worker's view
    of an attempt it is running)."""
    api = framework.load()
    log = [entry for entry in row["attempt_log"] or [] if isinstance(entry, dict)]
    status = status_of(row)
    worker_ids = [str(entry.get("worker_id") or "") for entry in log]
    if status == api.TaskResultStatus.RUNNING:
        worker_ids.append(row["locked_by"] or "")
    errors = [
        api.TaskError(
            exception_class_path=entry["error"].get("exception_class_path", ""),
            traceback=entry["error"].get("traceback", ""),
        )
        for entry in log
        if isinstance(entry.get("error"), dict)
    ]
    # The row's started_at is the current (or last) attempt's start; a claim clears it
    # until the attempt starts, so the log's last start stands in meanwhile.
    first_start = _when(log[0].get("started_at")) if log else None
    last_start = row["started_at"] or (_when(log[-1].get("started_at")) if log else None)
    fields = {
        "task": task if task is not None else task_of(row),
        "id": task_result_id(row["id"], row.get("database") or jobs_settings().main_database),
        "status": status,
        "enqueued_at": row["created_at"],
        "started_at": first_start or last_start,
        "finished_at": row["finished_at"] or row["failed_at"],
        "last_attempted_at": last_start,
        "args": row["args"],
        "kwargs": row["kwargs"],
        "backend": (row["meta"] or {}).get("backend"),
        "errors": errors,
        "worker_ids": worker_ids,
    }
    fields.update(changes)
    result = api.TaskResult(**fields)
    if fields["status"] == api.TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", row["return_value"])
    return result
