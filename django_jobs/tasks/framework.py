"""The ``django.tasks`` implementation the backend is built on.

Django 6.0+ ships ``django.tasks``; on Django 5.2 the ``django-tasks`` backport
(``django_tasks`` ≥ 0.12) provides the same API under another name. On Django 6 the
backport hands tasks to whatever backend ``TASKS`` names, so libraries that import it
(Wagtail) run on this backend's ``django.tasks`` classes too.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.core.exceptions import ImproperlyConfigured


def _django() -> SimpleNamespace | None:
    try:
        from django import tasks
    except ImportError:
        return None
    from django.tasks import base, exceptions, signals
    from django.tasks.backends.base import BaseTaskBackend
    from django.utils.inspect import is_module_level_function
    from django.utils.json import normalize_json

    return _namespace(
        tasks, base, signals, BaseTaskBackend, exceptions.InvalidTask,
        exceptions.TaskResultDoesNotExist, normalize_json, is_module_level_function,
    )  # fmt: skip


def _backport() -> SimpleNamespace | None:
    try:
        import django_tasks
    except ImportError:
        return None
    from django_tasks import base, exceptions, signals
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.utils import is_module_level_function, normalize_json

    return _namespace(
        django_tasks, base, signals, BaseTaskBackend, exceptions.InvalidTaskError,
        exceptions.TaskResultDoesNotExist, normalize_json, is_module_level_function,
    )  # fmt: skip


def _namespace(
    package, base, signals, backend_class, invalid, does_not_exist, normalize, module_level
) -> SimpleNamespace:
    from django.utils.inspect import get_func_args

    return SimpleNamespace(
        package=package.__name__,
        task_backends=package.task_backends,
        task=package.task,
        BaseTaskBackend=backend_class,
        Task=base.Task,
        TaskResult=base.TaskResult,
        TaskResultStatus=base.TaskResultStatus,
        TaskError=base.TaskError,
        TaskContext=base.TaskContext,
        MIN_PRIORITY=base.TASK_MIN_PRIORITY,
        MAX_PRIORITY=base.TASK_MAX_PRIORITY,
        InvalidTask=invalid,
        TaskResultDoesNotExist=does_not_exist,
        task_enqueued=signals.task_enqueued,
        task_started=signals.task_started,
        task_finished=signals.task_finished,
        normalize_json=normalize,
        get_func_args=get_func_args,
        is_module_level_function=module_level,
    )


def available() -> SimpleNamespace | None:
    """Django's ``django.tasks``, else the backport, else None."""
    return _django() or _backport()


def load() -> SimpleNamespace:
    api = available()
    if api is None:
        raise ImproperlyConfigured(
            "django_jobs.tasks.JobsBackend needs django.tasks (Django 6.0 or later) or, on "
            "Django 5.2, the django-tasks backport: pip install 'django-dbjobs[tasks]'"
        )
    return api
