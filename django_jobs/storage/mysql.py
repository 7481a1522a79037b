"""MySQL and MariaDB: SELECT … FOR UPDATE SKIP LOCKED then UPDATE, in one transaction.

Neither engine has ``UPDATE … RETURNING``, so a claim takes the locked rows' columns from
the SELECT and sets the lock with a second statement before COMMIT. Without partial
indexes, the claim index (migration 0002) starts with the columns that are NULL on every
claimable row, then ``(priority, run_at, id)``. A claim names the priorities that
claimable rows have, so that each becomes a range ``(priority, NULL < run_at <= now)`` of
that index: rows parked with no ``run_at`` (they sort first within their priority) and
rows due later (they sort after the ready ones of their priority, before the next
priority's) are outside every range and never read.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import OperationalError, transaction

from ..models import Job
from .base import Storage
from .rows import CLAIM_COLUMNS, ClaimedJob, NewJob, new_token


class MySQLStorage(Storage):
    vendor = "mysql"
    now_sql = "SELECT UTC_TIMESTAMP(6)"
    # An indexed "is anything ready?" probe 13 times a second: p99 pickup under 100 ms.
    idle_check_interval = 0.075
    # InnoDB gives out auto-increment ids at insert, so an event's row can commit after
    # a higher id did: readers look back this many seconds (see TableEventReader).
    event_commit_lag = 5.0
    attempt_log_append = (
        "JSON_ARRAY_APPEND(COALESCE(attempt_log, JSON_ARRAY()), '$',"
        " JSON_SET(%s, '$.worker_id', locked_by))"
    )

    def insert(self, rows: Sequence[NewJob], now: datetime) -> list[int]:
        if self.connection.mysql_is_mariadb:
            return super().insert(rows, now)
        # MySQL has no INSERT … RETURNING; a multi-row INSERT gets consecutive ids.
        sql, params = self._insert_sql(rows, now)
        with self.connection.cursor() as cursor:
            cursor.execute(sql.removesuffix(" RETURNING id"), params)
            first = cursor.lastrowid
        return list(range(first, first + len(rows)))

    # A plain read inside a REPEATABLE READ transaction could miss a holder committed
    # after its snapshot; a locking read sees it (and the upsert has locked it anyway).
    holder_lock_clause = " LOCK IN SHARE MODE"

    #: Tries of a unique insert that InnoDB chose as a deadlock victim (autocommit only).
    DEADLOCK_TRIES = 5

    def insert_unique(self, row: NewJob, now: datetime) -> tuple[int, bool]:
        # Racing upserts and the UPDATE that frees an expired key lock neighbouring
        # entries of the unique index, and InnoDB may pick one of them as a deadlock
        # victim. Outside a transaction only that statement was rolled back: try again.
        # Inside one, the whole transaction is gone, and only its owner can redo it.
        for attempt in range(1, self.DEADLOCK_TRIES):
            try:
                return super().insert_unique(row, now)
            except OperationalError as exc:
                if self.connection.in_atomic_block or _errno(exc) != ER_LOCK_DEADLOCK:
                    raise
                time.sleep(random.uniform(0, 0.01 * attempt))
        return super().insert_unique(row, now)

    def _insert_if_new(self, row: NewJob, now: datetime) -> int | None:
        # No ON CONFLICT DO NOTHING: the no-op upsert stores nothing for a duplicate and,
        # unlike catching the duplicate-key error, takes an exclusive lock on the holder,
        # so duplicates waiting on an uncommitted insert cannot deadlock when it rolls
        # back. The affected-row count cannot tell the cases apart (Django sets
        # CLIENT_FOUND_ROWS); the insert id can: 0 when nothing was inserted.
        sql, params = self._unique_insert_sql(row, now)
        with self.connection.cursor() as cursor:
            cursor.execute(f"{sql} ON DUPLICATE KEY UPDATE id = id", params)
            return cursor.lastrowid or None

    @contextmanager
    def _transaction(self):
        # Django's atomic() costs two extra round trips on MySQL (SET autocommit): the
        # claim is the hot path, so it brackets itself when no transaction is open.
        if self.connection.in_atomic_block:
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                yield cursor
            return
        with self.connection.cursor() as cursor:
            self._read_committed(cursor)
            cursor.execute("START TRANSACTION")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _read_committed(self, cursor) -> None:
        # None (OPTIONS["isolation_level"] = None) is not READ COMMITTED: Django then
        # sets no level and the server's default applies, REPEATABLE READ unless the
        # server is configured otherwise.
        if self.connection.isolation_level != "read committed":
            # Gap locks of a stricter level would make claims block enqueues. SET
            # TRANSACTION (not SESSION) covers the next transaction only: it cannot leak
            # into job code on the same connection, and needs no redo on reconnect.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")

    @contextmanager
    def write_transaction(self):
        # Recovery reads with FOR UPDATE SKIP LOCKED then writes: at REPEATABLE READ its
        # gap locks would block claims and enqueues. Inside atomic() no statement has run
        # yet, so the one-shot SET TRANSACTION applies to this transaction.
        outermost = not self.connection.in_atomic_block
        with transaction.atomic(using=self.alias):
            if outermost:
                with self.connection.cursor() as cursor:
                    self._read_committed(cursor)
            yield

    #: Priorities a claim names one by one; rows of higher priorities than the last one
    #: named are read through one open range (which walks their parked and future rows).
    CLAIM_PRIORITIES = 16

    def claimable_priorities(self) -> tuple[list[int], bool]:
        """The distinct priorities of claimable rows, lowest first (at most
        ``CLAIM_PRIORITIES``), and whether there are more. Each statement is a lookup at
        one end of a range of the claim index (EXPLAIN: "Select tables optimized away"):
        one for a single priority, one more per further priority."""
        claimable = (
            f"FROM {self.table} WHERE locked_at IS NULL AND failed_at IS NULL"
            " AND finished_at IS NULL"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT MIN(priority), MAX(priority) {claimable}")
            low, high = cursor.fetchone()
            found = [] if low is None else [low]
            while found and found[-1] != high and len(found) < self.CLAIM_PRIORITIES:
                cursor.execute(f"SELECT MIN(priority) {claimable} AND priority > %s", [found[-1]])
                found.append(cursor.fetchone()[0])
        return found, bool(found) and found[-1] != high

    def ready_select(
        self,
        queues: tuple[str, ...] | None,
        limit: int,
        now: datetime,
        columns: str = "id",
        exclude: Sequence[str] = (),
    ) -> tuple[str, list[Any]]:
        where, params = self.ready_where(queues, exclude)
        priorities, more = self.claimable_priorities()
        if priorities:
            # A priority that appears after this look-up is claimed by the next claim
            # (an idle worker's probe, has_ready, names no priority).
            marks = ", ".join(["%s"] * len(priorities))
            where += f" AND (priority IN ({marks})" + (" OR priority > %s)" if more else ")")
            params += priorities + ([priorities[-1]] if more else [])
        return (
            f"SELECT {columns} FROM {self.table} WHERE {where}"
            f" ORDER BY priority, run_at, id LIMIT %s{self.lock_clause}",
            [self.adapt(now), *params, limit],
        )

    def claim_plain(
        self,
        worker: str,
        queues: tuple[str, ...] | None,
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedJob]:
        pick, params = self.ready_select(queues, limit, now, ", ".join(CLAIM_COLUMNS), exclude)
        at = self.adapt(now)
        token = new_token()
        with self._transaction() as cursor:
            cursor.execute(pick, params)
            jobs = [ClaimedJob.from_row(row, token) for row in cursor.fetchall()]
            if not jobs:
                return jobs
            marks = ", ".join(["%s"] * len(jobs))
            cursor.execute(
                f"UPDATE {self.table} SET {self.CLAIM_SET}, attempts = attempts + 1"
                f" WHERE id IN ({marks})",
                [at, worker, token, at, *(job.id for job in jobs)],
            )
        for job in jobs:
            job.attempts += 1
        return jobs

    def _lock_limit_rows(self, cursor, keys: list[str], now) -> None:
        # The upsert locks each existing row exclusively, in the VALUES order, whether it
        # changes it or not; used_at is written only when stale.
        values = ", ".join(["(%s, %s)"] * len(keys))
        cursor.execute(
            f"INSERT INTO {self.limit_table} (lock_key, used_at) VALUES {values}"
            " ON DUPLICATE KEY UPDATE"
            " used_at = IF(used_at < %s, VALUES(used_at), used_at)",
            [*(value for key in keys for value in (key, self.adapt(now))), self._stale(now)],
        )

    def estimated_count(self) -> int | None:
        # InnoDB's own estimate of the table's rows (from its sampled statistics, kept up
        # to date as rows change), read from the data dictionary without touching rows.
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_ROWS FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                [Job._meta.db_table],
            )
            row = cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def concat(self, left: str, right: str) -> str:
        return f"CONCAT({left}, {right})"  # || is OR unless sql_mode has PIPES_AS_CONCAT

    def set_lock_wait(self, connection, seconds: float) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {max(1, round(seconds))}")


#: InnoDB's "Deadlock found when trying to get lock" error number.
ER_LOCK_DEADLOCK = 1213


def _errno(exc: BaseException) -> int | None:
    cause = exc.__cause__ or exc
    args = getattr(cause, "args", ())
    return args[0] if args and isinstance(args[0], int) else None
