"""Storage: the statements behind each job transition, one implementation per engine."""

from __future__ import annotations

from functools import cache

from django.db import connections

from ..conf import jobs_settings
from .base import (
    OUTCOME_FAILED,
    OUTCOME_RETRY,
    OUTCOME_SUCCEEDED,
    ClaimedJob,
    NewJob,
    Outcome,
    Storage,
    Waiter,
)

__all__ = [
    "OUTCOME_FAILED",
    "OUTCOME_RETRY",
    "OUTCOME_SUCCEEDED",
    "ClaimedJob",
    "NewJob",
    "Outcome",
    "Storage",
    "Waiter",
    "configure_new_connection",
    "get_storage",
]


@cache
def _storage_for(alias: str, vendor: str) -> Storage:
    if vendor == "postgresql":
        from .postgresql import PostgreSQLStorage as cls
    elif vendor == "mysql":
        from .mysql import MySQLStorage as cls
    elif vendor == "sqlite":
        from .sqlite import SQLiteStorage as cls
    else:
        raise NotImplementedError(
            f"django_jobs supports PostgreSQL, MySQL/MariaDB and SQLite, not {vendor!r}"
        )
    return cls(alias)


def get_storage(alias: str | None = None) -> Storage:
    """The storage for ``alias`` (default: ``JOBS["DATABASE"]``)."""
    alias = alias or jobs_settings().database
    return _storage_for(alias, connections[alias].vendor)


def configure_new_connection(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: give the jobs database what workers need."""
    if connection.alias != jobs_settings().database:
        return
    if connection.vendor == "sqlite":
        from .sqlite import configure_connection

        configure_connection(connection)
