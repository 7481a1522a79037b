"""Checks of the ``django.tasks`` backend (``TASKS`` entries naming
``django_jobs.tasks.JobsBackend``) and of ``JOBS["TASK_RESULTS_TTL"]`` / ``["TASK_MODULES"]``.

They run with the other django_jobs checks (``--tag django_jobs``). Django also calls
each backend's ``check()``; it reports only what these cannot: the backend configured
while django_jobs is not installed (E120), and then everything else too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, register

from .base import TAG, _closest, _declared_queues, _error, _is_number, _positive_int, _raw

#: Dotted paths that name the backend in ``TASKS``.
BACKEND_PATHS = ("django_jobs.tasks.JobsBackend", "django_jobs.tasks.backend.JobsBackend")
OPTION_KEYS = ("MAX_ATTEMPTS", "TIMEOUT", "TASKS")
TASK_OPTION_KEYS = ("MAX_ATTEMPTS", "TIMEOUT")


def _backends() -> list[tuple[str, dict[str, Any]]]:
    tasks = getattr(settings, "TASKS", None)
    if not isinstance(tasks, dict):
        return []
    return [
        (alias, params)
        for alias, params in tasks.items()
        if isinstance(params, dict) and params.get("BACKEND") in BACKEND_PATHS
    ]


@register(TAG)
def check_tasks(app_configs=None, **kwargs) -> list[CheckMessage]:
    messages = _top_level()
    backends = _backends()
    if backends:
        from ..tasks import framework

        if framework.available() is None:
            messages.append(
                _error(
                    128,
                    f"TASKS names django_jobs.tasks.JobsBackend ({backends[0][0]!r}) but "
                    "there is no django.tasks: Django is older than 6.0 and the django-tasks "
                    "backport is not installed.",
                    "On Django 5.2 install the backport: pip install 'django-dbjobs[tasks]' "
                    "(django-tasks >= 0.12), or upgrade to Django 6.",
                )
            )
    for alias, params in backends:
        messages += _backend(alias, params)
    return messages


def backend_checks(alias: str, from_backend: bool = False) -> list[CheckMessage]:
    """What ``JobsBackend.check()`` reports: nothing when django_jobs is installed (its
    own checks cover the backend), else E120 and the backend's other problems."""
    if from_backend and apps.is_installed("django_jobs"):
        return []
    params = dict(_backends()).get(alias, {})
    messages = []
    if not apps.is_installed("django_jobs"):
        messages.append(
            _error(
                120,
                f"TASKS[{alias!r}] uses django_jobs.tasks.JobsBackend but django_jobs is not "
                "in INSTALLED_APPS: there is no jobs table and no worker to run its tasks.",
                'Add "django_jobs" to INSTALLED_APPS and run migrate.',
                obj=alias,
            )
        )
    return messages + _backend(alias, params)


def _backend(alias: str, params: dict[str, Any]) -> list[CheckMessage]:
    where = f"TASKS[{alias!r}]"
    messages = []
    queues = params.get("QUEUES")
    declared = _declared_queues()
    if queues is not None:
        if not isinstance(queues, list | tuple | set) or not all(
            isinstance(q, str) for q in queues
        ):
            messages.append(
                _error(
                    121,
                    f"{where}['QUEUES'] must be a list of queue names, not {queues!r}.",
                    "List queues of settings.JOBS['QUEUES'], or leave QUEUES out to allow "
                    "all of them.",
                    obj=alias,
                )
            )
        elif declared is not None:
            for queue in queues:
                if queue not in declared:
                    messages.append(
                        _error(
                            121,
                            f"{where}['QUEUES'] has {queue!r}, which is not in "
                            f"settings.JOBS['QUEUES'] {declared!r}: its tasks could not be "
                            "stored.",
                            f"{_closest(queue, declared)}Add it to JOBS['QUEUES'] or remove "
                            "it from the backend's QUEUES.",
                            obj=alias,
                        )
                    )
    options = params.get("OPTIONS", {})
    if not isinstance(options, dict):
        return [
            *messages,
            _error(
                122,
                f"{where}['OPTIONS'] must be a dict, not {options!r}.",
                f'Write e.g. "OPTIONS": {{"MAX_ATTEMPTS": 5}}; keys: {", ".join(OPTION_KEYS)}.',
                obj=alias,
            ),
        ]
    for key in options:
        if key not in OPTION_KEYS:
            messages.append(
                _error(
                    122,
                    f"{where}['OPTIONS'] has an unknown key {key!r}.",
                    f"{_closest(key, list(OPTION_KEYS))}Valid keys: {', '.join(OPTION_KEYS)}.",
                    obj=alias,
                )
            )
    messages += _attempt_options(options, f"{where}['OPTIONS']", alias)
    per_task = options.get("TASKS", {})
    if not isinstance(per_task, dict) or not all(
        isinstance(path, str) and isinstance(entry, dict) for path, entry in per_task.items()
    ):
        messages.append(
            _error(
                125,
                f"{where}['OPTIONS']['TASKS'] must map task module paths to dicts, "
                f"not {per_task!r}.",
                'Write e.g. "TASKS": {"myapp.tasks.send_email": {"MAX_ATTEMPTS": 1}}.',
                obj=alias,
            )
        )
        return messages
    for path, entry in per_task.items():
        label = f"{where}['OPTIONS']['TASKS'][{path!r}]"
        for key in entry:
            if key not in TASK_OPTION_KEYS:
                messages.append(
                    _error(
                        125,
                        f"{label} has an unknown key {key!r}.",
                        f"{_closest(key, list(TASK_OPTION_KEYS))}Valid keys: "
                        f"{', '.join(TASK_OPTION_KEYS)}.",
                        obj=alias,
                    )
                )
        messages += _attempt_options(entry, label, alias)
    return messages


def _attempt_options(options: dict[str, Any], label: str, alias: str) -> list[CheckMessage]:
    messages = []
    value = options.get("MAX_ATTEMPTS")
    if value is not None and not _positive_int(value):
        messages.append(
            _error(
                123,
                f"{label}['MAX_ATTEMPTS'] must be a positive int, not {value!r}.",
                "1 means no retry; leave it out for the worker group's MAX_ATTEMPTS.",
                obj=alias,
            )
        )
    value = options.get("TIMEOUT")
    if value is not None and not (_is_number(value) and value > 0):
        messages.append(
            _error(
                124,
                f"{label}['TIMEOUT'] must be a positive number of seconds, not {value!r}.",
                "Leave it out for the worker group's MAX_RUNTIME.",
                obj=alias,
            )
        )
    return messages


def _top_level() -> list[CheckMessage]:
    raw = _raw()
    messages = []
    ttl = raw.get("TASK_RESULTS_TTL")
    if "TASK_RESULTS_TTL" in raw and ttl is not None:
        valid = ttl >= timedelta(0) if isinstance(ttl, timedelta) else _is_number(ttl) and ttl >= 0
        if not valid:
            messages.append(
                _error(
                    126,
                    f'JOBS["TASK_RESULTS_TTL"] must be seconds (>= 0), a timedelta or None, '
                    f"not {ttl!r}.",
                    "Finished task rows are kept this long for their results; None keeps "
                    "them for ever. The default is 86400 (a day).",
                )
            )
    modules = raw.get("TASK_MODULES")
    if "TASK_MODULES" in raw and not (
        isinstance(modules, list | tuple)
        and all(isinstance(m, str) and m and all(p.isidentifier() for p in m.split("."))
                for m in modules)
    ):  # fmt: skip
        messages.append(
            _error(
                127,
                f'JOBS["TASK_MODULES"] must be a list of module names, not {modules!r}.',
                'Write e.g. "TASK_MODULES": ["myproject.tasks"]: workers import tasks from '
                "these modules (and their submodules) besides installed apps.",
            )
        )
    return messages
