"""PostgreSQL behind a connection pooler in transaction mode (PgBouncer and the like).

Such a pooler lends a server connection for one transaction at a time, so nothing a
session keeps between transactions carries over: a LISTEN stops hearing notifications
once its server connection goes back to the pool, and a session ``SET`` lands on a server
connection that other clients get next. Claims, outcomes and enqueues are single
statements or single transactions and work unchanged; this module finds out whether a
connection is pooled and gives the two session-bound features a pooled form. It also
decides where the enqueue may use a prepared statement (also bound to one session).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from django.db import transaction

logger = logging.getLogger("django_jobs.worker")

#: (alias, host, port, name) -> whether that database is reached through a pooler.
_pooled: dict[tuple[Any, ...], bool] = {}
_warned: set[str] = set()


def behind_pooler(connection: Any) -> bool:
    """True when ``connection`` (a PostgreSQL ``DatabaseWrapper``) goes through a pooler.

    At connect, PostgreSQL announces the process id of the server process that serves the
    session (it identifies the session in cancel requests). A pooler makes up its own
    number, since it alone knows which server connection to cancel on: when the announced
    id differs from ``pg_backend_pid()``, something sits between us and the server. Asked
    once per process and database.
    """
    settings = connection.settings_dict
    key = (connection.alias, settings.get("HOST"), settings.get("PORT"), settings.get("NAME"))
    if key not in _pooled:
        # Imported here: this module is read on every engine (system checks), and this
        # one needs a PostgreSQL driver.
        from django.db.backends.postgresql.psycopg_any import is_psycopg3

        connection.ensure_connection()
        raw = connection.connection
        announced = raw.info.backend_pid if is_psycopg3 else raw.get_backend_pid()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            serving = cursor.fetchone()[0]
        _pooled[key] = announced != serving
    return _pooled[key]


def polling_reason(alias: str) -> str:
    """Why workers on ``alias`` poll instead of waiting for NOTIFY (log and W172)."""
    return (
        f"The jobs database {alias!r} reaches PostgreSQL through a connection pooler (the "
        "server process changes under the connection): a LISTEN there stops hearing "
        "NOTIFY when the pooler lends its server connection to another client, so idle "
        "workers poll for new jobs every 50 ms instead of being woken."
    )


LISTEN_HINT = (
    "Add a database alias that connects to the same database directly, not through the "
    'pooler, and name it in JOBS["LISTEN_DATABASE"]: it is used only to LISTEN, one '
    "connection per worker process."
)


def warn_polling(alias: str) -> None:
    """Log, once per process and alias, that workers poll because of the pooler."""
    if alias not in _warned:
        _warned.add(alias)
        logger.warning("%s %s (django_jobs.W172)", polling_reason(alias), LISTEN_HINT)


class LocalLockWait:
    """An execute wrapper: each statement waits at most so long for a lock, pooled or not.

    ``SET lock_timeout`` would stay on whichever server connection the pooler lent, for
    the next client, and would be gone from the server connection our next transaction
    gets. ``SET LOCAL`` lasts exactly one transaction on one server connection: it is sent
    before each statement, in the statement's transaction (one opened for it when the
    connection is in autocommit mode). Used only on the threads that must never wait on a
    job's own row lock (``storage.bound_lock_waits``), which write little.
    """

    def __init__(self, seconds: float) -> None:
        self.setting = f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'"
        self.busy = False

    def __call__(self, execute, sql, params, many, context):
        if self.busy:  # our own SET LOCAL, or a statement nested in one
            return execute(sql, params, many, context)
        connection, cursor = context["connection"], context["cursor"]
        self.busy = True
        try:
            if connection.in_atomic_block or not connection.get_autocommit():
                cursor.execute(self.setting)
                return execute(sql, params, many, context)
            with transaction.atomic(using=connection.alias):
                cursor.execute(self.setting)
                return execute(sql, params, many, context)
        finally:
            self.busy = False


def bound_per_transaction(connection: Any, seconds: float) -> None:
    """Give every statement of ``connection`` a transaction-local lock timeout."""
    if not any(isinstance(w, LocalLockWait) for w in connection.execute_wrappers):
        connection.execute_wrappers.append(LocalLockWait(seconds))


def may_prepare(connection: Any) -> bool:
    """Whether a prepared statement stays on this connection's server session: not
    behind a transaction-mode pooler (which lends the session per transaction), nor in
    Django's connection pool (whose ``reset`` may end the session's statements without
    psycopg knowing)."""
    if (connection.settings_dict.get("OPTIONS") or {}).get("pool"):
        return False
    return not behind_pooler(connection)


#: ``prepare_threshold`` while a statement is prepared on a connection that has none: no
#: count reaches it, so only statements executed with ``prepare=True`` are prepared.
_BY_REQUEST_ONLY = sys.maxsize


def execute_prepared(raw: Any, cursor: Any, sql: str, params: Sequence[Any]) -> None:
    """Execute ``sql`` as a server-side prepared statement on ``raw`` (a psycopg 3
    connection): parsed and planned once per connection, then only bound and run.

    Django turns psycopg's automatic preparing off (``prepare_threshold`` None) for the
    sake of transaction-mode poolers; callers check ``may_prepare`` first. The
    threshold is lifted only around this statement, so nothing else the project runs on
    the connection gets prepared. psycopg keeps the statement's name per connection and
    forgets it (DEALLOCATE ALL) after a rollback; the next call prepares it again.
    """
    if raw.prepare_threshold is not None:
        cursor.execute(sql, params, prepare=True)
        return
    raw.prepare_threshold = _BY_REQUEST_ONLY
    try:
        cursor.execute(sql, params, prepare=True)
    finally:
        raw.prepare_threshold = None
