"""System checks for ``settings.JOBS``, the registered jobs and the jobs database.

:mod:`django_jobs.conf` parses the setting leniently (a bad value falls back to its
default) so that a typo never crashes a worker; these checks are where the typo is
reported, with an id from ``docs/reference/checks.md`` and a hint. They read the raw
dictionary, never the parsed one. Ids are stable: a retired check keeps its number.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from . import conf, registry

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
    queues = _raw().get("QUEUES", conf.TOP_DEFAULTS["QUEUES"])
    if not isinstance(queues, list | tuple) or not queues:
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


@register(TAG)
def check_jobs_is_a_dict(app_configs=None, **kwargs) -> list[CheckMessage]:
    value = getattr(settings, "JOBS", None)
    if value is None or isinstance(value, dict):
        return []
    return [
        _error(
            1,
            f"settings.JOBS must be a dict, not {type(value).__name__}.",
            'Write it as JOBS = {"QUEUES": ["default"], ...} or remove it to use the defaults.',
        )
    ]


@register(TAG)
def check_top_level_keys(app_configs=None, **kwargs) -> list[CheckMessage]:
    valid = list(conf.TOP_DEFAULTS)
    return [
        _error(
            2,
            f"settings.JOBS has an unknown key {key!r}.",
            f"{_closest(key, valid)}Valid keys: {', '.join(valid)}.",
        )
        for key in _raw()
        if key not in conf.TOP_DEFAULTS
    ]


@register(TAG)
def check_database(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    if "DATABASE" not in raw:
        return []
    alias = raw["DATABASE"]
    if not isinstance(alias, str):
        return [
            _error(
                3,
                f'JOBS["DATABASE"] must be a database alias (a string), not {alias!r}.',
                'Use a key of settings.DATABASES, e.g. "default".',
            )
        ]
    databases = list(getattr(settings, "DATABASES", {}))
    if alias not in databases:
        return [
            _error(
                4,
                f'JOBS["DATABASE"] is {alias!r}, which is not in settings.DATABASES.',
                f"{_closest(alias, databases)}Aliases: {', '.join(databases) or 'none'}.",
            )
        ]
    return []


@register(TAG)
def check_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    if "QUEUES" not in raw:
        return []
    queues = raw["QUEUES"]
    hint = 'Use a list of queue names, e.g. ["default", "email"].'
    if not isinstance(queues, list | tuple) or not queues:
        return [_error(5, f'JOBS["QUEUES"] must be a non-empty list, not {queues!r}.', hint)]
    for name in queues:
        problem = _queue_name_problem(name)
        if problem:
            return [_error(5, f'JOBS["QUEUES"] has a bad queue name: {problem}.', hint)]
    duplicates = sorted({q for q in queues if queues.count(q) > 1})
    if duplicates:
        return [
            _error(
                6,
                f'JOBS["QUEUES"] lists {", ".join(map(repr, duplicates))} more than once.',
                "List each queue once.",
            )
        ]
    return []


@register(TAG)
def check_workers_is_a_list(app_configs=None, **kwargs) -> list[CheckMessage]:
    workers = _raw().get("WORKERS")
    if workers is None:
        return []
    if isinstance(workers, list | tuple) and workers and all(isinstance(g, dict) for g in workers):
        return []
    return [
        _error(
            7,
            f'JOBS["WORKERS"] must be a non-empty list of dicts, not {workers!r}.',
            'Write one dict per worker group, e.g. [{"QUEUE": "*", "COUNT": 2}], or remove '
            "the key for one group that serves every queue.",
        )
    ]


#: Top-level keys checked by a predicate: key → (id, predicate, what the value must be).
TOP_LEVEL_VALUES: dict[str, tuple[int, Callable[[Any], bool], str]] = {
    "HEARTBEAT_TIMEOUT": (8, _positive_number, "a positive number of seconds"),
    "PID_DIR": (9, _optional_str, "a directory path (a string) or None"),
    "LOG_FILE": (10, _optional_str, "a file path (a string) or None"),
}


@register(TAG)
def check_top_level_values(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    return [
        _error(
            number,
            f'JOBS["{key}"] must be {what}, not {raw[key]!r}.',
            f"Remove the key to use the default, {conf.TOP_DEFAULTS[key]!r}.",
        )
        for key, (number, valid, what) in TOP_LEVEL_VALUES.items()
        if key in raw and not valid(raw[key])
    ]


# -- worker groups --------------------------------------------------------------------------


@register(TAG)
def check_worker_keys(app_configs=None, **kwargs) -> list[CheckMessage]:
    valid = list(conf.WORKER_DEFAULTS)
    return [
        _error(
            20,
            f'JOBS["WORKERS"][{index}] has an unknown key {key!r}.',
            f"{_closest(key, valid)}Valid keys: {', '.join(valid)}.",
        )
        for index, group in _worker_groups()
        for key in group
        if key not in conf.WORKER_DEFAULTS
    ]


def _valid_queue_option(value: Any) -> bool:
    if value == "*" or (isinstance(value, str) and value):
        return True
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(q, str) and q for q in value)
    )


#: Worker keys checked by a predicate: key → (id, predicate, what the value must be).
WORKER_VALUES: dict[str, tuple[int, Callable[[Any], bool], str]] = {
    "QUEUE": (21, _valid_queue_option, '"*", a queue name or a non-empty list of queue names'),
    "COUNT": (23, _is_int, "a whole number of processes"),
    "MAX_ATTEMPTS": (25, _positive_int, "a whole number of at least 1"),
    "MAX_RUNTIME": (26, _positive_number, "a positive number of seconds"),
    "DELETE_FAILED_JOBS": (27, lambda v: isinstance(v, bool), "True or False"),
    "DELETE_SUCCESSFUL_JOBS": (27, lambda v: isinstance(v, bool), "True or False"),
    "SLEEP_DELAY": (28, _positive_number, "a positive number of seconds"),
    "THREADS": (29, _positive_int, "a whole number of at least 1"),
    "ASYNC_CONCURRENCY": (30, _positive_int, "a whole number of at least 1"),
    "BATCH_SIZE": (31, _positive_int, "a whole number of at least 1"),
    "MAX_JOBS": (32, _optional_positive_int, "a whole number of at least 1, or None"),
    "MAX_MEMORY_MB": (33, _optional_positive_int, "a whole number of megabytes, or None"),
}


@register(TAG)
def check_worker_values(app_configs=None, **kwargs) -> list[CheckMessage]:
    return [
        _error(
            number,
            f'JOBS["WORKERS"][{index}]["{key}"] must be {what}, not {group[key]!r}.',
            f"Remove the key to use the default, {conf.WORKER_DEFAULTS[key]!r}.",
        )
        for index, group in _worker_groups()
        for key, (number, valid, what) in WORKER_VALUES.items()
        if key in group and not valid(group[key])
    ]


@register(TAG)
def check_worker_count(app_configs=None, **kwargs) -> list[CheckMessage]:
    return [
        _error(
            24,
            f'JOBS["WORKERS"][{index}]["COUNT"] is {group["COUNT"]}: a group needs at least '
            "one process.",
            "Set COUNT to 1 or more, or remove the group.",
        )
        for index, group in _worker_groups()
        if _is_int(group.get("COUNT", 1)) and group.get("COUNT", 1) < 1
    ]


def _group_queues(group: dict[str, Any]) -> list[str] | None:
    """The queues a group names; None for ``"*"`` (every queue) or a malformed value."""
    value = group.get("QUEUE", conf.WORKER_DEFAULTS["QUEUE"])
    if not _valid_queue_option(value) or value == "*":
        return None
    names = [value] if isinstance(value, str) else list(value)
    return None if "*" in names else names


@register(TAG)
def check_worker_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    queues = _declared_queues()
    if queues is None:
        return []
    return [
        _error(
            22,
            f'JOBS["WORKERS"][{index}]["QUEUE"] names {name!r}, which is not in JOBS["QUEUES"].',
            f"{_closest(name, queues)}Add it to QUEUES or use one of: {', '.join(queues)}.",
        )
        for index, group in _worker_groups()
        for name in _group_queues(group) or ()
        if name not in queues
    ]


# -- registered jobs and queues ---------------------------------------------------------------


@register(TAG)
def check_job_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    queues = _declared_queues()
    if queues is None:
        return []
    return [
        _error(
            40,
            f"Job {name} is declared with queue={definition.queue!r}, which is not in "
            'JOBS["QUEUES"]: enqueueing it would raise UnknownQueue.',
            f'{_closest(definition.queue, queues)}Add {definition.queue!r} to JOBS["QUEUES"] '
            f"or pass one of {', '.join(map(repr, queues))} to @job(queue=...).",
            obj=name,
        )
        for name, definition in sorted(registry.all_jobs().items())
        if definition.queue not in queues
    ]


@register(TAG)
def check_unserved_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    queues = _declared_queues()
    if queues is None or not _jobs_is_a_dict() or check_workers_is_a_list():
        return []  # which groups exist is unknown
    served: set[str] = set()
    for _index, group in _worker_groups():
        if not _valid_queue_option(group.get("QUEUE", "*")):
            return []  # E021 first: what the group serves is unknown
        names = _group_queues(group)
        if names is None:
            return []  # a group serves every queue
        served.update(names)
    return [
        _warning(
            41,
            f'Queue {queue!r} is in JOBS["QUEUES"] but no worker group serves it: its jobs '
            "would wait forever.",
            f'Add {queue!r} to a group\'s QUEUE in JOBS["WORKERS"], or add a group with '
            '"QUEUE": "*".',
        )
        for queue in queues
        if queue not in served
    ]


# -- the jobs database ------------------------------------------------------------------------


@register(TAG)
def check_database_engine(app_configs=None, **kwargs) -> list[CheckMessage]:
    found = _jobs_database()
    if found is None:
        return []
    alias, database = found
    engine = database.get("ENGINE", "django.db.backends.dummy")
    vendor = _vendor(engine)
    if vendor is None or vendor in SUPPORTED_VENDORS:
        return []
    return [
        _error(
            50,
            f"The jobs database {alias!r} uses {engine!r} ({vendor}), which django_jobs "
            "does not support.",
            'Point JOBS["DATABASE"] at a PostgreSQL, MySQL 8.0.1+, MariaDB 10.6+ or SQLite '
            "database.",
        )
    ]


def _sqlite_jobs_database() -> tuple[str, dict[str, Any]] | None:
    found = _jobs_database()
    if found is None or _vendor(found[1].get("ENGINE", "")) != "sqlite":
        return None
    return found


def _is_in_memory(name: Any) -> bool:
    from django.db.backends.sqlite3.creation import DatabaseCreation

    name = "" if name is None else name
    # Django's test runner swaps in "file:memorydb_<alias>?mode=memory…": tests run jobs
    # in-process (django_jobs.testing), so that database is not worth a warning.
    if isinstance(name, str) and name.startswith("file:memorydb_"):
        return False
    return bool(name) and DatabaseCreation.is_in_memory_db(name)


@register(TAG)
def check_sqlite_in_memory(app_configs=None, **kwargs) -> list[CheckMessage]:
    found = _sqlite_jobs_database()
    if found is None or not _is_in_memory(found[1].get("NAME")):
        return []
    return [
        _warning(
            51,
            f"The jobs database {found[0]!r} is an in-memory SQLite database: worker "
            "processes cannot see the jobs this process enqueues.",
            "Give it a file NAME, e.g. BASE_DIR / 'db.sqlite3'.",
        )
    ]


@register(TAG)
def check_sqlite_transaction_mode(app_configs=None, **kwargs) -> list[CheckMessage]:
    found = _sqlite_jobs_database()
    if found is None:
        return []
    alias, database = found
    mode = (database.get("OPTIONS") or {}).get("transaction_mode")
    if isinstance(mode, str) and mode.upper() in {"IMMEDIATE", "EXCLUSIVE"}:
        return []
    return [
        _warning(
            52,
            f"The jobs database {alias!r} is SQLite without "
            "OPTIONS['transaction_mode'] = 'IMMEDIATE'.",
            f'Set DATABASES[{alias!r}]["OPTIONS"]["transaction_mode"] = "IMMEDIATE": a '
            "transaction that reads and then writes takes the write lock up front and waits "
            'for it, instead of failing with "database is locked" when a worker writes '
            "meanwhile. (WAL mode and a busy timeout are set by django_jobs on the jobs "
            "connection.)",
        )
    ]


def skip_locked_errors(alias: str, is_mariadb: bool, version: tuple[int, ...]) -> list[Error]:
    """E053 for a MySQL/MariaDB server of this version, if it cannot claim jobs."""
    minimum = MARIADB_SKIP_LOCKED if is_mariadb else MYSQL_SKIP_LOCKED
    if tuple(version) >= minimum:
        return []
    product = "MariaDB" if is_mariadb else "MySQL"
    return [
        _error(
            53,
            f"The jobs database {alias!r} runs {product} {'.'.join(map(str, version))}, which "
            "has no SELECT … FOR UPDATE SKIP LOCKED (added in "
            f"{product} {'.'.join(map(str, minimum))}): workers need it to claim jobs "
            "without blocking each other.",
            "Upgrade to MariaDB 10.6+ or MySQL 8.0.1+, or use another database for jobs.",
        )
    ]


@register(Tags.database, TAG)
def check_skip_locked(app_configs=None, databases=None, **kwargs) -> list[CheckMessage]:
    # Database checks connect, so Django runs them only when asked (check --database,
    # migrate, test); like Django's own, this one does nothing otherwise.
    found = _jobs_database()
    if not databases or found is None or found[0] not in databases:
        return []
    from django.db import connections

    connection = connections[found[0]]
    if connection.vendor != "mysql":
        return []
    return skip_locked_errors(found[0], connection.mysql_is_mariadb, connection.mysql_version)
