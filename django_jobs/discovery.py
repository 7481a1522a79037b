"""Where jobs are declared, and whether workers know them.

A worker knows the jobs declared while Django loads its apps: every installed app's
``jobs`` module (autodiscovered), and whatever those modules, the models and the apps'
``ready()`` import. A job declared later in a web process (in a view module that the
URLconf imports on the first request, in a ``services.py`` imported inside a function) is
known to that process only, and its rows would fail in a worker as unregistered, hours
later. So ``@job`` notes whether the app registry was ready, and such a job is refused when
enqueued (:class:`JobNotImported`) and reported by ``manage.py check`` (E181). A worker
process seals the registry when it starts: a job declared after that is refused at once.

A test suite imports its test modules after Django is set up, and runs their jobs in its own
process (``run_jobs``, or a worker run in-process): while Django's test environment is set
up, nothing is refused.
"""

from __future__ import annotations

import sys
from typing import Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

from .exceptions import JobNotImported

#: Why the registry takes no more jobs (set in a worker process), or None.
_sealed: str | None = None


def declared_late() -> bool:
    """True when a job declared now is declared after Django loaded its apps."""
    return apps.ready


def seal(why: str) -> None:
    """Refuse jobs declared from now on in this process (a worker, once it started)."""
    global _sealed
    _sealed = why


def check_declaration(name: str, func: Any) -> None:
    """Called by ``@job``: ``ImproperlyConfigured`` in a sealed process (not in tests, which
    may run a worker in their own process: ``call_command("jobs", "worker", "--workoff")``)."""
    if _sealed is None or in_tests():
        return
    raise ImproperlyConfigured(
        f"job {name} ({func.__module__}) is declared after this worker started "
        f"({_sealed}): other workers, which did not import {func.__module__}, could not run "
        f"it. Declare it in {_home(func.__module__)} (or a module that file imports), so "
        "that every process knows it from its start"
    )


def check_enqueue(definition: Any) -> None:
    """Called at enqueue: :class:`JobNotImported` for a job workers would not know."""
    if definition.declared_late and not in_tests():
        raise JobNotImported(not_imported(definition))


def not_imported(definition: Any) -> str:
    module = definition.func.__module__
    return (
        f"job {definition.name} is declared in {module}, which was imported after Django "
        "loaded its apps: workers import each installed app's jobs.py when they start, and "
        f"not {module}, so they would fail its rows as unregistered. Move the job to "
        f"{_home(module)}, or import {module} from there"
    )


def _home(module: str) -> str:
    """The ``jobs`` module of the app that holds ``module``, as a dotted path."""
    app = apps.get_containing_app_config(module) if apps.ready else None
    return f"{app.name}.jobs" if app is not None else "an installed app's jobs.py"


def in_tests() -> bool:
    """True while Django's test environment is set up (``setup_test_environment``, which
    Django's test runner and pytest-django call)."""
    # Set up only by django.test.utils: a process that never imported it (a worker,
    # whose checks ask) is not under test, and need not import the test client for that.
    utils = sys.modules.get("django.test.utils")
    return utils is not None and hasattr(utils._TestState, "saved_data")
