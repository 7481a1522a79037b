"""Shared pieces of the system checks: ids, value tests, and readers of the raw setting."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning
from django.core.exceptions import ImproperlyConfigured

from .. import conf, placement

#: ``manage.py check --tag django_jobs`` runs only these checks.
TAG = "django_jobs"

#: The ``queue`` column's length: a longer name could not be stored.
QUEUE_NAME_MAX_LENGTH = 64

#: First versions with ``SELECT … FOR UPDATE SKIP LOCKED``, which claims rely on.
MARIADB_SKIP_LOCKED = (10, 6)
MYSQL_SKIP_LOCKED = (8, 0, 1)

SUPPORTED_VENDORS = {"postgresql", "mysql", "sqlite"}


def _error(number: int, msg: str, hint: str, obj: Any = None) -> Error:
    return Error(msg, hint=hint, obj=obj, id=f"django_jobs.E{number:03d}")


def _warning(number: int, msg: str, hint: str, obj: Any = None) -> Warning:
    return Warning(msg, hint=hint, obj=obj, id=f"django_jobs.W{number:03d}")


# -- value predicates ---------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _positive_number(value: Any) -> bool:
    return _is_number(value) and value > 0  # NaN is not > 0 either


def _optional_positive_int(value: Any) -> bool:
    return value is None or _positive_int(value)


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _queue_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be a queue name, or None when it can."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a non-empty string"
    if name == "*":
        return "'*' is reserved: a worker group's QUEUE uses it to mean every queue"
    if len(name) > QUEUE_NAME_MAX_LENGTH:
        return f"{name!r} is longer than {QUEUE_NAME_MAX_LENGTH} characters"
    return None


def _closest(word: Any, valid: list[str]) -> str:
    """A "Did you mean …?" for the valid word nearest ``word``, ignoring case."""
    by_folded = {v.casefold(): v for v in valid}
    match = difflib.get_close_matches(str(word).casefold(), list(by_folded), n=1)
    return f"Did you mean {by_folded[match[0]]!r}? " if match else ""


# -- what the checks read -------------------------------------------------------------------


def _raw() -> dict[str, Any]:
    return conf.raw_settings()


def _jobs_is_a_dict() -> bool:
    return isinstance(getattr(settings, "JOBS", None), dict | None)


def _declared_queues() -> list[str] | None:
    """``JOBS["QUEUES"]`` when it is well-formed; None when E001 or E005 reports it."""
    if not _jobs_is_a_dict():
        return None
    queues = placement.queue_names(_raw().get("QUEUES", conf.TOP_DEFAULTS["QUEUES"]))
    if queues is None or not queues:
        return None
    if any(_queue_name_problem(q) for q in queues):
        return None
    return list(dict.fromkeys(queues))  # E006 reports duplicates once


def _worker_groups() -> list[tuple[int, dict[str, Any]]]:
    """The worker groups that are dicts, with their index (E007 reports the rest)."""
    workers = _raw().get("WORKERS")
    if workers is None:
        return [(0, {})]
    if not isinstance(workers, list | tuple):
        return []
    return [(i, group) for i, group in enumerate(workers) if isinstance(group, dict)]


def _jobs_database() -> tuple[str, dict[str, Any]] | None:
    """The jobs database's alias and settings, when ``JOBS["DATABASE"]`` names one."""
    alias = _raw().get("DATABASE", conf.TOP_DEFAULTS["DATABASE"])
    databases = getattr(settings, "DATABASES", {})
    if not isinstance(alias, str) or alias not in databases:
        return None
    return alias, databases[alias]


def _vendor(engine: Any) -> str | None:
    """The vendor of a database backend, without connecting; None if it cannot load."""
    from django.db.utils import load_backend

    try:
        return load_backend(str(engine)).DatabaseWrapper.vendor
    except (ImproperlyConfigured, ImportError, AttributeError):
        return None  # Django itself reports a backend it cannot load, at first use


# -- JOBS itself and its top-level keys -------------------------------------------------------
