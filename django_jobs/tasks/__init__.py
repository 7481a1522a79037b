"""django_jobs as a ``django.tasks`` backend: ``TASKS = {"default": {"BACKEND":
"django_jobs.tasks.JobsBackend"}}``.

Tasks are rows of the jobs table named ``"django.tasks:" + task.module_path``, run by the
same workers as ``@job`` functions. The backend is built on Django's ``django.tasks``
(Django 6.0+) or, on Django 5.2, on the ``django-tasks`` backport (``django_tasks``); see
:mod:`django_jobs.tasks.framework`. Importing this package imports neither: the names
below load on first use.
"""

from __future__ import annotations

from typing import Any

from ..registry import TASK_PREFIX

__all__ = ["TASK_PREFIX", "JobsBackend", "JobsTask"]


def __getattr__(name: str) -> Any:
    if name in ("JobsBackend", "JobsTask"):
        from . import backend

        return getattr(backend, name)
    raise AttributeError(f"module 'django_jobs.tasks' has no attribute {name!r}")
