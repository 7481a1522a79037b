"""Every statement that moves a job from one state to another, and its contract.

One subclass per database vendor implements the hot paths (insert, claim, record) in as
few statements as the engine allows; everything else here is shared. Only this package
reads ``connection.vendor``.

Contracts (each holds with any number of worker processes on any number of hosts):

* ``insert``: one statement for any number of rows; nothing is stored if it fails. When
  called inside ``transaction.atomic`` on the same alias, it is part of that transaction.
* ``claim``: atomically locks up to ``limit`` ready rows for one worker, incrementing their
  ``attempts`` and writing a fresh **claim token**; a row is handed to exactly one worker.
  Rows come back in claim order (priority, run_at, id).
* Every write that ends or gives back a claim (``record``, ``release``, ``mark_started``,
  ``set_progress``) is guarded by ``claim_token``: a writer whose claim was taken away
  (a frozen process that wakes up, a host that was cut off) changes nothing, even when
  the same worker identity claimed the row again since.
* ``release``: gives claimed rows back unrun, without spending an attempt.
* ``recoverable``: rows whose worker is dead or whose own deadline passed; the lifeline
  charges the started ones an errored attempt and releases the others.
* Cancellation: ``cancel_waiting`` ends a row that is not claimed in one statement;
  ``request_cancel`` marks a claimed one (``cancelled_at``). Every statement that ends or
  gives back a claim (``record``'s retry and failure branches, ``release``) turns a marked
  row into a cancelled one (``failed_at`` set, never retried) in the same guarded
  statement, so a cancellation racing the end of its job is decided by the database.
  A success is recorded as such: the job had done its work.
* Events: the outcome of a job declared with ``@job(events=True)`` is published on its
  channel (``job:<id>``) by the statement pair that writes it, in one transaction, and
  only when the guarded statement changed the row: once per outcome, whichever path
  (worker, watchdog, lifeline, cancellation) ends the job, and never for a rolled-back
  or fenced-off write. Such outcomes are written one guarded statement per job (a marked
  row's cancellation first), so each event names what the row became.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import Min, Q

from .. import clock
from ..exceptions import JobsError
from ..models import Event, Job, QueuePause
from . import flows
from .eventreading import EventReader, TableEventReader
from .flows import CANCELLED as FLOW_CANCELLED
from .flows import reason_of
from .limits import ConcurrencyLimits
from .outcomes import (
    FOLLOW_UP_GUARD,
    OutcomeWriting,
    _compact,
    job_channel,
    publishes_outcomes,
)
from .rates import RateLimits
from .rows import (
    CLAIM_COLUMNS,
    ClaimedJob,
    HeldRow,
    NewJob,
    chunks,
)
from .waiting import PollingWaiter, SleepingWaiter, Waiter

#: Threads whose connections must never wait long for a row lock (watchdog, flusher,
#: progress, heartbeat): a job's own transaction may hold a lock on its own row.
_bounded = threading.local()


def bound_lock_waits() -> None:
    """Connections this thread opens from now on wait at most LOCK_WAIT for a lock."""
    _bounded.on = True


def lock_waits_bounded() -> bool:
    return getattr(_bounded, "on", False)


#: Seconds a side thread's statement waits for a row lock before giving up.
LOCK_WAIT = 2


class Storage(ConcurrencyLimits, RateLimits, OutcomeWriting):
    """Shared implementation; vendors override what they can do in fewer statements."""

    vendor = "base"
    #: Seconds between idle checks for new work when the engine cannot push a wake-up.
    idle_check_interval = 0.05
    #: The database server's clock in UTC, without a time zone (naive datetime or text).
    now_sql = "SELECT CURRENT_TIMESTAMP"

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.table = self.connection.ops.quote_name(Job._meta.db_table)

    @property
    def connection(self):
        return connections[self.alias]

    def database_now(self) -> datetime:
        """The database's clock, as django_jobs stores times: what liveness is judged by,
        so hosts whose clocks disagree still agree on whose heartbeat is fresh."""
        with self.connection.cursor() as cursor:
            cursor.execute(self.now_sql)
            return clock.from_database(cursor.fetchone()[0])

    def adapt(self, value: datetime | None) -> Any:
        return self.connection.ops.adapt_datetimefield_value(value)

    # -- enqueue ---------------------------------------------------------------------

    def insert(self, rows: Sequence[NewJob], now: datetime) -> list[int]:
        sql, params = self._insert_sql(rows, now)
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [row[0] for row in cursor.fetchall()]

    def _insert_values(
        self,
        rows: Sequence[NewJob],
        now: datetime,
        with_meta: bool = False,
        with_tag: bool = False,
        with_limits: bool = False,
    ) -> tuple[str, list[Any]]:
        adapted_now = self.adapt(now)
        params: list[Any] = []
        for row in rows:
            params += [
                row.name, row.args, row.kwargs, row.queue, row.priority,
                self.adapt(row.run_at), adapted_now, adapted_now,
            ]  # fmt: skip
            if with_meta:
                params.append(row.meta)
            if with_tag:
                params.append(row.tag)
            if with_limits:
                params += [row.concurrency_key, row.concurrency_limit, row.rate_key, row.rate_limit]
        more = (
            (", " + self.json_param if with_meta else "")
            + (", %s" if with_tag else "")
            + (", %s, %s, %s, %s" if with_limits else "")
        )
        one = f"({self.placeholders()}{more})"
        return ", ".join([one] * len(rows)), params

    def placeholders(self) -> str:
        return "%s, %s, %s, %s, %s, %s, 0, '', '', %s, %s"

    #: A JSON parameter in a statement (PostgreSQL casts it to jsonb).
    json_param = "%s"

    def _insert_sql(self, rows: Sequence[NewJob], now: datetime) -> tuple[str, list[Any]]:
        # The meta column only when a row has one (django.tasks rows): @job inserts stay
        # exactly as they were.
        # Likewise the tag column only when a row has a tag, and the limit columns.
        with_meta, with_tag, with_limits = has_meta(rows), has_tag(rows), has_limits(rows)
        values, params = self._insert_values(rows, now, with_meta, with_tag, with_limits)
        return (
            f"INSERT INTO {self.table} ({INSERT_COLUMNS}"
            f"{optional_columns(with_meta, with_tag, with_limits)})"
            f" VALUES {values} RETURNING id",
            params,
        )

    # -- unique enqueue ----------------------------------------------------------------

    #: Rounds of insert / look up the holder before giving up: each round that does not
    #: end means another process freed or took the key in between, which is rare.
    UNIQUE_ROUNDS = 10

    def insert_unique(self, row: NewJob, now: datetime) -> tuple[int, bool]:
        """Store ``row`` unless a job holds its ``unique_key``: (id, True) for the new
        row, (the holder's id, False) for a duplicate.

        The unique index decides between concurrent callers; inside a transaction the
        row and its key are part of it (a rollback leaves no key), and a concurrent
        duplicate waits for that transaction to end on PostgreSQL and MariaDB.
        """
        key = row.unique_key
        stale_before = None if row.unique_for is None else now - row.unique_for
        for _ in range(self.UNIQUE_ROUNDS):
            job_id = self._insert_if_new(row, now)
            if job_id is not None:
                return job_id, True
            if stale_before is not None and self._free_stale_key(key, stale_before):
                continue  # the holder's unique_for is over: insert again
            holder = self._key_holder(key)
            if holder is not None:
                return holder, False
            # The holder left the counted states between the two statements: insert again.
        raise JobsError(
            f"could not store unique job {row.name}: its key was taken and freed "
            f"{self.UNIQUE_ROUNDS} times while it was being stored"
        )

    def _unique_insert_sql(self, row: NewJob, now: datetime) -> tuple[str, list[Any]]:
        # The meta (e.g. the caller's trace context), tag and limit columns only when set.
        with_meta, with_tag = row.meta is not None, row.tag is not None
        with_limits = has_limits([row])
        values, params = self._insert_values([row], now, with_meta, with_tag, with_limits)
        return (
            f"INSERT INTO {self.table} ({INSERT_COLUMNS}"
            f"{optional_columns(with_meta, with_tag, with_limits)}, unique_key)"
            f" VALUES {values[:-1]}, %s)",
            [*params, row.unique_key],
        )

    def _insert_if_new(self, row: NewJob, now: datetime) -> int | None:
        """Insert ``row``; its id, or None when a row holds its key (nothing stored)."""
        sql, params = self._unique_insert_sql(row, now)
        with self.connection.cursor() as cursor:
            cursor.execute(f"{sql} ON CONFLICT (unique_key) DO NOTHING RETURNING id", params)
            found = cursor.fetchone()
        return None if found is None else found[0]

    #: Appended to the holder lookup: a read that sees the latest committed holder.
    holder_lock_clause = ""

    def _key_holder(self, key: str) -> int | None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {self.table} WHERE unique_key = %s{self.holder_lock_clause}",
                [key],
            )
            found = cursor.fetchone()
        return None if found is None else found[0]

    def _free_stale_key(self, key: str, stale_before: datetime) -> bool:
        """Clear ``key`` on a holder enqueued before ``stale_before``; True if it did."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET unique_key = NULL"
                " WHERE unique_key = %s AND created_at < %s",
                [key, self.adapt(stale_before)],
            )
            return cursor.rowcount > 0

    # -- claim -----------------------------------------------------------------------

    def ready_where(
        self, queues: tuple[str, ...] | None, exclude: Sequence[str] = ()
    ) -> tuple[str, list[Any]]:
        """``exclude``: paused queues, for a worker that serves every queue (``"*"``)."""
        sql = "locked_at IS NULL AND failed_at IS NULL AND finished_at IS NULL AND run_at <= %s"
        params: list[Any] = []
        if queues is not None:
            sql += f" AND queue IN ({', '.join(['%s'] * len(queues))})"
            params += queues
        if exclude:
            sql += f" AND queue NOT IN ({', '.join(['%s'] * len(exclude))})"
            params += exclude
        return sql, params

    #: What the claim's SELECT appends to lock the rows it picks (engines with row locks).
    lock_clause = " FOR UPDATE SKIP LOCKED"

    def ready_select(
        self,
        queues: tuple[str, ...] | None,
        limit: int,
        now: datetime,
        columns: str = "id",
        exclude: Sequence[str] = (),
    ) -> tuple[str, list[Any]]:
        """The SELECT that picks the next ready rows in claim order (served by the claim index)."""
        where, params = self.ready_where(queues, exclude)
        return (
            f"SELECT {columns} FROM {self.table} WHERE {where}"
            f" ORDER BY priority, run_at, id LIMIT %s{self.lock_clause}",
            [self.adapt(now), *params, limit],
        )

    #: The columns every claim sets besides attempts: lock, owner, token, no start yet.
    CLAIM_SET = (
        "locked_at = %s, locked_by = %s, claim_token = %s, started_at = NULL,"
        " expires_at = NULL, updated_at = %s"
    )

    def claim(
        self,
        worker: str,
        queues: tuple[str, ...] | None,
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedJob]:
        """``exclude``: queues not to claim from (the paused ones).

        Without concurrency limits, the engine's one-statement claim (``claim_plain``).
        A row with a limit that it claims anyway (enqueued by code this process does not
        know) is given back unrun at once, and claimed again by ``claim_limited``, which
        every later claim of this process uses.
        """
        if self.limited:
            return self.claim_limited(worker, queues, limit, now, exclude)
        jobs = self.claim_plain(worker, queues, limit, now, exclude)
        keyed = [job for job in jobs if job.limited]
        if not keyed:
            return jobs
        self.limited = True
        self.release(keyed, now)
        plain = [job for job in jobs if not job.limited]
        more = self.claim_limited(worker, queues, limit - len(plain), now, exclude)
        return sorted(plain + more, key=ClaimedJob.sort_key)

    def claim_plain(
        self,
        worker: str,
        queues: tuple[str, ...] | None,
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedJob]:
        """The claim without concurrency limits: one statement where the engine can."""
        raise NotImplementedError

    def has_ready(
        self, queues: tuple[str, ...] | None, now: datetime, exclude: Sequence[str] = ()
    ) -> bool:
        where, params = self.ready_where(queues, exclude)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {self.table} WHERE {where} LIMIT 1", [self.adapt(now), *params]
            )
            return cursor.fetchone() is not None

    def next_due(
        self, queues: tuple[str, ...] | None, now: datetime, exclude: Sequence[str] = ()
    ) -> datetime | None:
        """When the next scheduled job (a retry, a ``wait``) of ``queues`` comes due."""
        rows = Job.objects.using(self.alias).later(now)
        if queues is not None:
            rows = rows.filter(queue__in=queues)
        if exclude:
            rows = rows.exclude(queue__in=exclude)
        return rows.aggregate(due=Min("run_at"))["due"]

    # -- events ------------------------------------------------------------------------

    def publish_statement(self, channel: str, payload: str, now: datetime) -> tuple[str, list]:
        """The statement that publishes ``payload`` (JSON text) on ``channel``: a row of
        the events table, which subscribers poll (PostgreSQL sends a NOTIFY instead)."""
        return (
            f"INSERT INTO {self.event_table} (channel, payload, created_at) VALUES (%s, %s, %s)",
            [channel, payload, self.adapt(now)],
        )

    @property
    def event_table(self) -> str:
        return self.connection.ops.quote_name(Event._meta.db_table)

    #: Seconds after a higher id was read within which a lower one may still commit
    #: (events table readers; see ``TableEventReader``).
    event_commit_lag = 0.0

    def event_reader(self, poll_interval: float) -> EventReader:
        """What a subscribing process reads events with (see ``django_jobs.events``)."""
        return TableEventReader(self, poll_interval, self.event_commit_lag)

    def publish(self, channel: str, payload: str, now: datetime) -> None:
        """Publish on this thread's connection: part of its open transaction, if any."""
        with self.connection.cursor() as cursor:
            cursor.execute(*self.publish_statement(channel, payload, now))

    # -- recovery ----------------------------------------------------------------------

    def recoverable(
        self, live: Sequence[str], cutoff: datetime, expired: datetime, limit: int
    ) -> list[HeldRow]:
        """Locked rows whose worker is not in ``live`` (locked before ``cutoff``), or whose
        deadline is before ``expired``. Call inside ``write_transaction()``: the rows are
        locked where the engine can, skipping rows another recovery holds, so lifelines
        racing on many workers share the work instead of fighting over the same rows."""
        dead = Q(locked_at__lt=cutoff)
        if live:
            dead &= Q(locked_by__isnull=True) | ~Q(locked_by__in=list(live))
        rows = (
            Job.objects.using(self.alias)
            .filter(locked_at__isnull=False)
            .filter(dead | Q(expires_at__lt=expired))
            .order_by("locked_at")
            .select_for_update(skip_locked=True)
            .values_list(*HELD_COLUMNS)[:limit]
        )
        return [_held(row) for row in rows]

    def held_by(self, identity: str) -> list[HeldRow]:
        """Rows ``identity`` holds now (``locked_at`` first: the locked-rows index)."""
        rows = (
            Job.objects.using(self.alias)
            .filter(locked_at__isnull=False, locked_by=identity)
            .values_list(*HELD_COLUMNS)
        )
        return [_held(row) for row in rows]

    def write_transaction(self):
        """A transaction that writes, for code that reads before it writes."""
        return transaction.atomic(using=self.alias)

    def set_lock_wait(self, connection: Any, seconds: float) -> None:
        """Make ``connection`` give up waiting for a row lock after ``seconds``."""

    # -- cancellation and paused queues ------------------------------------------------

    def cancel_waiting(self, job_id: int, message: str, now: datetime) -> bool:
        """Cancel a row no worker holds (scheduled, ready or due later), in one statement:
        it leaves the claimable rows (``failed_at``), keeps the cancellation's words in
        ``last_error`` and frees its unique key. False when the row is not waiting."""
        at = self.adapt(now)
        sql = (
            f"UPDATE {self.table} SET failed_at = %s, run_at = NULL, last_error = %s,"
            " unique_key = NULL, updated_at = %s, cancelled_at = %s"
            " WHERE id = %s AND locked_at IS NULL AND failed_at IS NULL"
            " AND finished_at IS NULL"
        )
        params = [at, message, at, at, job_id]
        queues: set[str] = set()
        with self.write_transaction(), self.connection.cursor() as cursor:
            cursor.execute(sql + FOLLOW_UP_GUARD, params)
            if cursor.rowcount <= 0:
                # A waiting row with follow-ups: cancelled with its follow-on writes.
                if not (
                    Job.objects.using(self.alias)
                    .select_for_update()
                    .filter(pk=job_id, follow_up=True, locked_at__isnull=True)
                    .filter(failed_at__isnull=True, finished_at__isnull=True)
                    .exists()
                ):
                    return False
                cursor.execute(sql, params)
                queues = flows.ended(self.alias, job_id, FLOW_CANCELLED, reason_of(message), now)
            cursor.execute(f"SELECT name, attempts FROM {self.table} WHERE id = %s", [job_id])
            name, attempts = cursor.fetchone()
            if publishes_outcomes(name):
                event = {"state": "cancelled", "job_id": job_id, "attempt": attempts, "done": True}
                self.publish(job_channel(job_id), _compact(event), now)
        if queues:
            self.wake_workers(queues)
        return True

    def request_cancel(self, job_id: int, message: str, now: datetime) -> bool:
        """Ask the worker that holds a row to stop it: ``cancelled_at`` is set (once) and
        the outcome statements then end the row cancelled. False when no worker holds it
        or its cancellation was asked for already."""
        at = self.adapt(now)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET last_error = %s, updated_at = %s, cancelled_at = %s"
                " WHERE id = %s AND locked_at IS NOT NULL AND cancelled_at IS NULL"
                " AND failed_at IS NULL AND finished_at IS NULL",
                [message, at, at, job_id],
            )
            changed = cursor.rowcount > 0
        if changed:
            self.notify_controls()
        return changed

    def cancel_requested(self, ids: Iterable[int]) -> set[int]:
        """Which of ``ids`` (rows this worker holds) were asked to stop (primary key reads)."""
        ids = list(ids)
        found: set[int] = set()
        for chunk in chunks(ids, 500):
            found.update(
                Job.objects.using(self.alias)
                .filter(pk__in=chunk, cancelled_at__isnull=False)
                .filter(failed_at__isnull=True, finished_at__isnull=True)
                .values_list("pk", flat=True)
            )
        return found

    def paused_queues(self) -> frozenset[str]:
        """The names of the paused queues (a table of a few rows)."""
        return frozenset(
            QueuePause.objects.using(self.alias).values_list("queue", flat=True).order_by()
        )

    def notify_controls(self) -> None:
        """Tell every worker at once that a pause or a cancellation changed, where the
        engine can push (PostgreSQL); elsewhere workers find out at their next poll."""

    def control_waiter(self) -> Waiter:
        """What a worker's control thread waits on between polls (see ``notify_controls``)."""
        return SleepingWaiter()

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


HELD_COLUMNS = (*CLAIM_COLUMNS, "claim_token", "locked_by", "started_at", "expires_at")


def _held(row: Sequence[Any]) -> HeldRow:
    claim_token, locked_by, started_at, expires_at = row[len(CLAIM_COLUMNS) :]
    return HeldRow(ClaimedJob.from_row(row, claim_token), locked_by or "", started_at, expires_at)


def has_meta(rows: Sequence[NewJob]) -> bool:
    return any(row.meta is not None for row in rows)


def has_tag(rows: Sequence[NewJob]) -> bool:
    return any(row.tag is not None for row in rows)


def has_limits(rows: Sequence[NewJob]) -> bool:
    return any(row.concurrency_key is not None or row.rate_key is not None for row in rows)


#: The columns every insert writes; optional ones follow only when a row has them, so
#: the plain insert stays as it was.
INSERT_COLUMNS = (
    "name, args, kwargs, queue, priority, run_at, attempts, last_error, progress_message,"
    " created_at, updated_at"
)
LIMIT_COLUMNS = ", concurrency_key, concurrency_limit, rate_key, rate_limit"


def optional_columns(with_meta: bool, with_tag: bool, with_limits: bool) -> str:
    """The optional columns of an insert, in ``_insert_values``' order."""
    return (
        (", meta" if with_meta else "")
        + (", tag" if with_tag else "")
        + (LIMIT_COLUMNS if with_limits else "")
    )
