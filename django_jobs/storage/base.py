"""Every statement that moves a job from one state to another, and its contract.

One subclass per database vendor implements the hot paths (insert, claim, record) in as
few statements as the engine allows; everything else here is shared. Only this package
reads ``connection.vendor``.

Contracts (each holds with any number of worker processes on any number of hosts):

* ``insert``: one statement for any number of rows; nothing is stored if it fails. When
  called inside ``transaction.atomic`` on the same alias, it is part of that transaction.
* ``claim``: atomically locks up to ``limit`` ready rows for one worker, incrementing their
  ``attempts``; a row is handed to exactly one worker. Rows come back in claim order
  (priority, run_at, id).
* ``record``: writes the outcomes of claimed jobs. Each write is guarded by
  ``locked_by = worker``: if the lifeline took a row away from a worker presumed dead, that
  worker's late outcome is dropped instead of overwriting the row's new life.
* ``release``: gives claimed rows back unrun, without spending an attempt.
* ``orphans``: rows locked by workers without a fresh heartbeat, or locked for longer than
  a maximum runtime; the lifeline records them as errored attempts through ``record``.
"""

from __future__ import annotations

import json
import os
import select
import time
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections, transaction

from .. import clock
from ..models import Job

OUTCOME_SUCCEEDED = "succeeded"
OUTCOME_RETRY = "retry"
OUTCOME_FAILED = "failed"

#: Columns a claim returns, in this order.
CLAIM_COLUMNS = ("id", "name", "args", "kwargs", "queue", "priority", "attempts", "run_at")


@dataclass(frozen=True, slots=True)
class NewJob:
    name: str
    args: str  # JSON text
    kwargs: str  # JSON text
    queue: str
    priority: int
    run_at: datetime
    arg_list: list[Any] = field(default_factory=list)  # the values behind ``args``
    kwarg_dict: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ClaimedJob:
    id: int
    name: str
    args: Any
    kwargs: Any
    queue: str
    priority: int
    attempts: int
    run_at: Any

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ClaimedJob:
        job_id, name, args, kwargs, queue, priority, attempts, run_at = row
        return cls(job_id, name, _json(args), _json(kwargs), queue, priority, attempts, run_at)

    def sort_key(self) -> tuple[int, Any, int]:
        return (self.priority, self.run_at, self.id)


@dataclass(slots=True)
class Outcome:
    """What became of one claimed job; ``run_at`` is the retry time for ``retry``."""

    job: ClaimedJob
    kind: str
    error: str = ""
    run_at: datetime | None = None


def _json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    return json.loads(value) if isinstance(value, str) else value


class Storage:
    """Shared implementation; vendors override what they can do in fewer statements."""

    vendor = "base"
    #: Seconds between idle checks for new work when the engine cannot push a wake-up.
    idle_check_interval = 0.05

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.table = self.connection.ops.quote_name(Job._meta.db_table)

    @property
    def connection(self):
        return connections[self.alias]

    def adapt(self, value: datetime | None) -> Any:
        return self.connection.ops.adapt_datetimefield_value(value)

    # -- enqueue ---------------------------------------------------------------------

    def insert(self, rows: Sequence[NewJob], now: datetime) -> list[int]:
        sql, params = self._insert_sql(rows, now)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]

    def _insert_values(self, rows: Sequence[NewJob], now: datetime) -> tuple[str, list[Any]]:
        adapted_now = self.adapt(now)
        params: list[Any] = []
        for row in rows:
            params += [
                row.name, row.args, row.kwargs, row.queue, row.priority,
                self.adapt(row.run_at), adapted_now, adapted_now,
            ]  # fmt: skip
        one = f"({self.placeholders()})"
        return ", ".join([one] * len(rows)), params

    def placeholders(self) -> str:
        return "%s, %s, %s, %s, %s, %s, 0, '', '', %s, %s"

    def _insert_sql(self, rows: Sequence[NewJob], now: datetime) -> tuple[str, list[Any]]:
        values, params = self._insert_values(rows, now)
        return (
            f"INSERT INTO {self.table} (name, args, kwargs, queue, priority, run_at, attempts,"
            f" last_error, progress_message, created_at, updated_at) VALUES {values}"
            " RETURNING id",
            params,
        )

    # -- claim -----------------------------------------------------------------------

    def ready_where(self, queues: tuple[str, ...] | None) -> tuple[str, list[Any]]:
        sql = "locked_at IS NULL AND failed_at IS NULL AND finished_at IS NULL AND run_at <= %s"
        if queues is None:
            return sql, []
        return sql + f" AND queue IN ({', '.join(['%s'] * len(queues))})", list(queues)

    #: What the claim's SELECT appends to lock the rows it picks (engines with row locks).
    lock_clause = " FOR UPDATE SKIP LOCKED"

    def ready_select(
        self, queues: tuple[str, ...] | None, limit: int, now: datetime, columns: str = "id"
    ) -> tuple[str, list[Any]]:
        """The SELECT that picks the next ready rows in claim order (served by the claim index)."""
        where, params = self.ready_where(queues)
        return (
            f"SELECT {columns} FROM {self.table} WHERE {where}"
            f" ORDER BY priority, run_at, id LIMIT %s{self.lock_clause}",
            [self.adapt(now), *params, limit],
        )

    def claim(
        self, worker: str, queues: tuple[str, ...] | None, limit: int, now: datetime
    ) -> list[ClaimedJob]:
        raise NotImplementedError

    def has_ready(self, queues: tuple[str, ...] | None, now: datetime) -> bool:
        where, params = self.ready_where(queues)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {self.table} WHERE {where} LIMIT 1", [self.adapt(now), *params]
            )
            return cursor.fetchone() is not None

    # -- outcomes --------------------------------------------------------------------

    def record(
        self,
        worker: str,
        outcomes: Iterable[Outcome],
        now: datetime,
        *,
        keep_succeeded: bool = False,
        delete_failed: bool = False,
    ) -> int:
        """Write outcomes; returns how many rows this worker still owned and changed."""
        deletes: list[int] = []
        updates: list[tuple[str, list[Any]]] = []
        at = self.adapt(now)
        for outcome in outcomes:
            job_id = outcome.job.id
            if outcome.kind == OUTCOME_SUCCEEDED:
                if keep_succeeded:
                    updates.append(
                        (
                            "locked_at = NULL, locked_by = NULL, finished_at = %s, updated_at = %s",
                            [at, at, job_id],
                        )
                    )
                else:
                    deletes.append(job_id)
            elif outcome.kind == OUTCOME_RETRY:
                updates.append(
                    (
                        "locked_at = NULL, locked_by = NULL, run_at = %s, last_error = %s,"
                        " updated_at = %s",
                        [self.adapt(outcome.run_at), outcome.error, at, job_id],
                    )
                )
            elif delete_failed:
                deletes.append(job_id)
            else:
                updates.append(
                    (
                        "locked_at = NULL, locked_by = NULL, run_at = NULL, failed_at = %s,"
                        " last_error = %s, updated_at = %s",
                        [at, outcome.error, at, job_id],
                    )
                )
        return self._write(worker, deletes, updates)

    def _write(self, worker: str, deletes: list[int], updates: list[tuple[str, list[Any]]]) -> int:
        statements = self._statements(worker, deletes, updates)
        if not statements:
            return 0
        changed = 0
        with self.atomic_if(len(statements) > 1), self.connection.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
                changed += max(cursor.rowcount, 0)
        return changed

    def _statements(
        self, worker: str, deletes: list[int], updates: list[tuple[str, list[Any]]]
    ) -> list[tuple[str, list[Any]]]:
        statements = []
        for chunk in _chunks(deletes, 500):
            marks = ", ".join(["%s"] * len(chunk))
            statements.append(
                (
                    f"DELETE FROM {self.table} WHERE id IN ({marks}) AND locked_by = %s",
                    [*chunk, worker],
                )
            )
        for assignments, params in updates:
            statements.append(
                (
                    f"UPDATE {self.table} SET {assignments} WHERE id = %s AND locked_by = %s",
                    [*params, worker],
                )
            )
        return statements

    def atomic_if(self, needed: bool):
        """A transaction around several statements; a single statement is atomic alone."""
        if needed:
            return transaction.atomic(using=self.alias)
        return nullcontext()

    def release(self, worker: str, job_ids: Sequence[int], now: datetime) -> int:
        """Give claimed rows back unrun: the lock is cleared and the attempt refunded."""
        if not job_ids:
            return 0
        marks = ", ".join(["%s"] * len(job_ids))
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET locked_at = NULL, locked_by = NULL,"
                " attempts = attempts - 1, updated_at = %s"
                f" WHERE id IN ({marks}) AND locked_by = %s",
                [self.adapt(now), *job_ids, worker],
            )
            return cursor.rowcount

    def set_progress(self, worker: str, job_id: int, percent: int, message: str) -> None:
        Job.objects.using(self.alias).filter(pk=job_id, locked_by=worker).update(
            progress=percent, progress_message=message, updated_at=clock.now()
        )

    # -- admin -----------------------------------------------------------------------

    def estimated_count(self) -> int | None:
        """A cheap estimate of the job table's row count, or None when the engine keeps none.

        The admin's paginator uses it instead of ``COUNT(*)`` over millions of rows.
        """
        return None

    # -- waiting for work --------------------------------------------------------------

    def wake_workers(self, queues: Iterable[str]) -> None:
        """Tell idle workers that jobs of ``queues`` became ready (not by an insert).

        Engines whose workers notice any commit (SQLite's ``data_version``) or poll
        cheaply (MySQL/MariaDB) need nothing; PostgreSQL sends a NOTIFY.
        """

    def waiter(self, queues: tuple[str, ...] | None) -> Waiter:
        return PollingWaiter(self, queues)

    def prepare_worker_connection(self) -> None:
        """Make the current thread's connection fit for a long-running worker."""


class Waiter:
    """Sleeps until new work may be ready, a wake-up is written to ``wake_fd``, or timeout.

    ``start`` is called before the worker's first claim: whatever becomes ready after it
    must wake ``wait``, or a job enqueued between an empty claim and the first wait would
    sleep until the next poll.
    """

    def start(self) -> None:
        pass

    def wait(self, timeout: float, wake_fd: int) -> bool:
        """True when woken early because new work may be ready."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class PollingWaiter(Waiter):
    """Checks cheaply for ready rows every ``idle_check_interval`` seconds."""

    def __init__(self, storage: Storage, queues: tuple[str, ...] | None) -> None:
        self.storage = storage
        self.queues = queues

    def changed(self) -> bool:
        return self.storage.has_ready(self.queues, clock.now())

    def wait(self, timeout: float, wake_fd: int) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if _sleep_or_woken(min(left, self.storage.idle_check_interval), wake_fd):
                return True
            if self.changed():
                return True


def _sleep_or_woken(seconds: float, wake_fd: int) -> bool:
    """Sleep up to ``seconds``; True if something was written to ``wake_fd``."""
    readable, _, _ = select.select([wake_fd], [], [], seconds)
    if readable:
        drain(wake_fd)
        return True
    return False


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
