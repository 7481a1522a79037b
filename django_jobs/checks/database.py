"""Checks of the jobs database: engine, SQLite settings, driver and SKIP LOCKED support."""

from __future__ import annotations

import itertools
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from .base import (
    MARIADB_SKIP_LOCKED,
    MYSQL_SKIP_LOCKED,
    SUPPORTED_VENDORS,
    TAG,
    _error,
    _jobs_database,
    _vendor,
    _warning,
)


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


#: psycopg 3 before this has no ``Connection.notifies(timeout=…)``, which LISTEN relies on.
PSYCOPG_NOTIFIES = (3, 2)


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version string: "3.2.0.dev1" -> (3, 2, 0)."""
    numbers = []
    for part in version.split("."):
        digits = "".join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        numbers.append(int(digits))
        if digits != part:
            break
    return tuple(numbers)


def psycopg_warnings(alias: str, version: str) -> list[CheckMessage]:
    """W054 for a PostgreSQL jobs database driven by psycopg 3 of this version."""
    if _release(version) >= PSYCOPG_NOTIFIES:
        return []
    return [
        _warning(
            54,
            f"The jobs database {alias!r} is PostgreSQL with psycopg {version}: workers wait "
            "for new jobs with LISTEN, which needs psycopg 3.2's "
            "Connection.notifies(timeout=…).",
            'Upgrade psycopg: python -m pip install "psycopg[binary]>=3.2" (or install '
            '"django-dbjobs[postgres]", which requires it).',
        )
    ]


@register(TAG)
def check_psycopg_version(app_configs=None, **kwargs) -> list[CheckMessage]:
    found = _jobs_database()
    if found is None or _vendor(found[1].get("ENGINE", "")) != "postgresql":
        return []
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    if not is_psycopg3:
        return []  # with psycopg2 workers never LISTEN: they poll (storage.postgresql)
    import psycopg

    return psycopg_warnings(found[0], psycopg.__version__)


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
