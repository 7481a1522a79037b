"""SQLite: one ``UPDATE … RETURNING`` statement claims; ``PRAGMA data_version`` wakes.

SQLite serialises writers, so every hot-path write is a single statement: it takes the
write lock when it starts (waiting out the busy timeout) and cannot deadlock the way a
deferred transaction that reads before it writes can.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from datetime import datetime

from django.db import transaction

from .base import Storage
from .rows import CLAIM_COLUMNS, ClaimedJob, new_token
from .waiting import PollingWaiter, Waiter

#: Busy timeout for the jobs connection when OPTIONS sets no "timeout".
BUSY_TIMEOUT_MS = 30_000


class SQLiteStorage(Storage):
    vendor = "sqlite"
    # The clock of the machine that holds the file: SQLite has no server.
    now_sql = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"
    # One UPDATE statement holds SQLite's single write lock: no row locks to take.
    lock_clause = ""
    # PRAGMA data_version reads no table: 20 times a second costs next to nothing.
    idle_check_interval = 0.05
    # '$[#]' is the end of the array (SQLite 3.31+; Django 5.2 needs 3.31 already).
    attempt_log_append = (
        "json_insert(COALESCE(attempt_log, '[]'), '$[#]', json_set(%s, '$.worker_id', locked_by))"
    )

    def claim_plain(
        self,
        worker: str,
        queues: tuple[str, ...] | None,
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedJob]:
        pick, params = self.ready_select(queues, limit, now, exclude=exclude)
        at = self.adapt(now)
        token = new_token()
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET {self.CLAIM_SET}, attempts = attempts + 1"
                f" WHERE id IN ({pick}) RETURNING {', '.join(CLAIM_COLUMNS)}",
                [at, worker, token, at, *params],
            )
            jobs = [ClaimedJob.from_row(row, token) for row in cursor.fetchall()]
        jobs.sort(key=ClaimedJob.sort_key)
        return jobs

    def waiter(self, queues: tuple[str, ...] | None) -> Waiter:
        return DataVersionWaiter(self, queues)

    def set_lock_wait(self, connection, seconds: float) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

    @contextmanager
    def write_transaction(self):
        # A deferred transaction that reads first cannot upgrade to the write lock while
        # another connection writes: SQLite fails it at once ("database is locked"),
        # whatever the busy timeout. BEGIN IMMEDIATE waits for the lock up front.
        connection = self.connection
        # transaction_mode is only set when the connection opens: read before that, it
        # is "none", and putting that back would make later transactions DEFERRED.
        connection.ensure_connection()
        mode = connection.transaction_mode
        if not connection.in_atomic_block:
            connection.transaction_mode = "IMMEDIATE"
        try:
            with transaction.atomic(using=self.alias):
                yield
        finally:
            connection.transaction_mode = mode


class DataVersionWaiter(PollingWaiter):
    """Reads ``PRAGMA data_version``, which changes when another connection commits."""

    def __init__(self, storage: Storage, queues: tuple[str, ...] | None) -> None:
        super().__init__(storage, queues)
        self.version = self._read()

    def _read(self) -> int:
        with self.storage.connection.cursor() as cursor:
            cursor.execute("PRAGMA data_version")
            return cursor.fetchone()[0]

    def changed(self) -> bool:
        version = self._read()
        if version == self.version:
            return False
        self.version = version
        return True


def configure_connection(connection) -> None:
    """WAL and a busy timeout: what several processes sharing one SQLite file need."""
    if connection.is_in_memory_db():
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0].lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        if "timeout" not in connection.settings_dict.get("OPTIONS", {}):
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
