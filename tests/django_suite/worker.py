# Part of the adapted copy of Django 6.1.3's tests/tasks (see README.md in this folder);
# this module is django_jobs' own, not Django's.
"""What the adapted tests use in place of the immediate and dummy backends.

``jobs_backend()`` is the ``override_settings`` of a suite class: ``TASKS`` naming
``django_jobs.tasks.JobsBackend`` and ``JOBS`` with the suite's queues, its tasks module
allowed (``TASK_MODULES``), and one attempt per task, as the immediate backend makes.
``run_worker()`` runs what is ready the way a deployment does: ``manage.py jobs
workoff``, in this process, on committed rows (``TransactionTestCase``). Tests inside
a ``TestCase`` transaction use ``django_jobs.testing.run_jobs()`` instead.
"""

from __future__ import annotations

import io
import signal
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from tests.conftest import Process, worker_env

from .settings import SUITE_JOBS

BACKEND = "django_jobs.tasks.JobsBackend"

#: JOBS["QUEUES"] of the suite.
QUEUES = SUITE_JOBS["QUEUES"]


def jobs_settings(**changes: Any) -> dict[str, Any]:
    return {**settings.JOBS, **SUITE_JOBS, **changes}


def jobs_backend(
    queues: list[str] | None = None, **tasks: dict[str, Any]
) -> override_settings:
    """TASKS whose "default" is django_jobs' backend (with ``queues`` as its QUEUES when
    given), plus the other backends named in ``tasks``."""
    default: dict[str, Any] = {"BACKEND": BACKEND}
    if queues is not None:
        default["QUEUES"] = queues
    return override_settings(TASKS={"default": default, **tasks}, JOBS=jobs_settings())


def run_worker_process() -> Process:
    """``manage.py jobs workoff`` in a process of its own, on this test's database, with
    the suite's settings (``settings.py`` here); it has exited when this returns."""
    connections.close_all()  # no lock of ours in its way (SQLite)
    process = Process(
        ["jobs", "workoff"],
        worker_env({"DJANGO_SETTINGS_MODULE": "tests.django_suite.settings"}),
    )
    try:
        process.wait(60)
    finally:
        process.kill_tree()
    return process


def run_worker() -> str:
    """``manage.py jobs workoff`` in this process; its output. pytest's signal handlers
    are put back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    out = io.StringIO()
    try:
        call_command("jobs", "workoff", stdout=out, stderr=out)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    return out.getvalue()
