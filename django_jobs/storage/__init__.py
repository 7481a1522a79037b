"""Storage: the statements behind each job transition, one implementation per engine."""

from __future__ import annotations

from functools import cache

from django.db import connections

from ..conf import jobs_settings
from .base import LOCK_WAIT, Storage, bound_lock_waits, job_channel, lock_waits_bounded
from .rows import (
    OUTCOME_CANCELLED,
    OUTCOME_FAILED,
    OUTCOME_RETRY,
    OUTCOME_SNOOZE,
    OUTCOME_SUCCEEDED,
    ClaimedJob,
    HeldRow,
    NewJob,
    Outcome,
    StartMark,
)
from .waiting import Waiter

__all__ = [
    "OUTCOME_CANCELLED",
    "OUTCOME_FAILED",
    "OUTCOME_RETRY",
    "OUTCOME_SNOOZE",
    "OUTCOME_SUCCEEDED",
    "ClaimedJob",
    "HeldRow",
    "NewJob",
    "Outcome",
    "StartMark",
    "Storage",
    "Waiter",
    "bound_lock_waits",
    "configure_new_connection",
    "get_storage",
    "job_channel",
    "use_worker_connections",
]

#: Set in worker, supervisor and workoff processes (``use_worker_connections``).
_worker_process = False


def use_worker_connections() -> None:
    """This process runs workers: its jobs connections take SQLite's write lock up front.

    Several processes writing one SQLite file need ``BEGIN IMMEDIATE``: a transaction that
    reads, then writes, fails at once with "database is locked" when another process
    writes meanwhile. Projects are told to set ``transaction_mode``; worker processes do
    not rely on it. Connections already open are changed too.
    """
    global _worker_process
    _worker_process = True
    for connection in connections.all(initialized_only=True):
        if connection.alias in jobs_settings().databases and connection.connection is not None:
            _configure_worker_connection(connection)


def _configure_worker_connection(connection) -> None:
    if connection.vendor == "sqlite" and getattr(connection, "transaction_mode", None) is None:
        connection.transaction_mode = "IMMEDIATE"


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
    if connection.alias not in jobs_settings().databases:
        return
    if connection.vendor == "sqlite":
        from .sqlite import configure_connection

        configure_connection(connection)
    if _worker_process:
        _configure_worker_connection(connection)
    if lock_waits_bounded():
        get_storage(connection.alias).set_lock_wait(connection, LOCK_WAIT)
