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

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, transaction
from django.db.models import Min, Q

from .. import clock
from ..conf import jobs_settings
from ..exceptions import JobsError
from ..models import Event, Job, LimitLock, QueuePause
from . import flows
from .eventreading import EventReader, TableEventReader
from .flows import CANCELLED as FLOW_CANCELLED
from .flows import FAILED as FLOW_FAILED
from .flows import SUCCEEDED as FLOW_SUCCEEDED
from .flows import reason_of
from .rows import (
    CLAIM_COLUMNS,
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
    new_token,
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


#: Says whether a job called ``name`` publishes its outcomes (``@job(events=True)``). Set
#: by the app's ``ready()``: the registry sits above the storage.
def _no_outcome_events(name: str) -> bool:
    return False


_publishes_outcomes: Callable[[str], bool] = _no_outcome_events


def use_outcome_events(predicate: Callable[[str], bool]) -> None:
    global _publishes_outcomes
    _publishes_outcomes = predicate


def job_channel(job_id: int) -> str:
    """The channel a job's progress, its own events and its outcomes are published on."""
    return f"job:{job_id}"


#: The event each outcome kind publishes as ``state``.
EVENT_STATES = {
    OUTCOME_SUCCEEDED: "succeeded",
    OUTCOME_RETRY: "retrying",
    OUTCOME_SNOOZE: "snoozed",
    OUTCOME_FAILED: "failed",
    OUTCOME_CANCELLED: "cancelled",
}

#: A statement, its parameters, the channel (None: no event) and JSON text of the event it
#: publishes when it changed a row, and the outcome (if any) it records, as what (its
#: ``ended``).
Published = tuple[str, list[Any], str | None, str, Outcome | None, str]


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
                params += [row.concurrency_key, row.concurrency_limit]
        more = (
            (", " + self.json_param if with_meta else "")
            + (", %s" if with_tag else "")
            + (", %s, %s" if with_limits else "")
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
            f"{_optional_columns(with_meta, with_tag, with_limits)})"
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
            f"{_optional_columns(with_meta, with_tag, with_limits)}, unique_key)"
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

    #: True once this process met a job with a concurrency limit (or declares one):
    #: from then on every claim counts slots (``claim_limited``).
    limited = False

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
        keyed = [job for job in jobs if job.concurrency_key is not None]
        if not keyed:
            return jobs
        self.limited = True
        self.release(keyed, now)
        plain = [job for job in jobs if job.concurrency_key is None]
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

    def claim_limited(
        self,
        worker: str,
        queues: tuple[str, ...] | None,
        limit: int,
        now: datetime,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedJob]:
        """A claim that takes a slot of each picked row's concurrency limit, in one
        transaction: pick (SKIP LOCKED), lock the picked rows' keys, count their claimed
        rows, claim the rows that got a slot and park the others (``run_at`` NULL: out
        of every claim until a slot of their key frees up; no attempt spent)."""
        claimed: list[ClaimedJob] = []
        at = self.adapt(now)
        token = new_token()
        picked = 0
        with self.write_transaction(), self.connection.cursor() as cursor:
            # Parked rows leave the ready set at once: pick again (in this transaction,
            # which sees its own parking) so that the jobs behind them are claimed now.
            while len(claimed) < limit and picked < self.PARK_PER_CLAIM:
                wanted = limit - len(claimed)
                jobs = self._claim_round(cursor, worker, queues, wanted, now, at, token, exclude)
                picked += len(jobs)
                claimed += [job for job in jobs if job.token == token]
                if len(jobs) < wanted:
                    break  # nothing more is ready
        for job in claimed:
            job.attempts += 1
        claimed.sort(key=ClaimedJob.sort_key)
        return claimed

    #: Rows one claim may pick and park before it returns what it has.
    PARK_PER_CLAIM = 2000

    def _claim_round(
        self, cursor, worker, queues, limit, now, at, token, exclude
    ) -> list[ClaimedJob]:
        """Pick up to ``limit`` ready rows; claim those with a slot (token ``token``) and
        park the others (token 0). Returns every picked row."""
        pick, params = self.ready_select(queues, limit, now, ", ".join(CLAIM_COLUMNS), exclude)
        cursor.execute(pick, params)
        jobs = [ClaimedJob.from_row(row, token) for row in cursor.fetchall()]
        jobs.sort(key=ClaimedJob.sort_key)
        limits = _limits_of(jobs)
        if limits:
            running = self._lock_keys(cursor, sorted(limits), now)
            for job in jobs:
                key = job.concurrency_key
                if key is None:
                    continue
                if running.get(key, 0) < (job.concurrency_limit or 1):
                    running[key] = running.get(key, 0) + 1
                else:
                    job.token = 0
        for chunk in _chunks([job.id for job in jobs if job.token], 500):
            cursor.execute(
                f"UPDATE {self.table} SET {self.CLAIM_SET}, attempts = attempts + 1"
                f" WHERE id IN ({', '.join(['%s'] * len(chunk))})",
                [at, worker, token, at, *chunk],
            )
        for chunk in _chunks([job.id for job in jobs if not job.token], 500):
            cursor.execute(
                f"UPDATE {self.table} SET run_at = NULL, updated_at = %s"
                f" WHERE id IN ({', '.join(['%s'] * len(chunk))})",
                [at, *chunk],
            )
        return jobs

    def _lock_keys(self, cursor: Any, keys: list[str], now: datetime) -> dict[str, int]:
        """Lock the ``LimitLock`` rows of ``keys`` (creating them), in key order so that
        two transactions never wait for each other; then count each key's claimed rows.

        The count is a statement of its own after the locks: under READ COMMITTED it
        sees every transaction that held a lock before us as committed."""
        self._lock_limit_rows(cursor, keys, now)
        marks = ", ".join(["%s"] * len(keys))
        cursor.execute(
            f"SELECT concurrency_key, COUNT(*) FROM {self.table}"
            f" WHERE concurrency_key IN ({marks}) AND locked_at IS NOT NULL"
            " GROUP BY concurrency_key",
            keys,
        )
        return {key: count for key, count in cursor.fetchall()}

    def _lock_limit_rows(self, cursor: Any, keys: list[str], now: datetime) -> None:
        # DO UPDATE locks every conflicting row, whether its WHERE lets the update through
        # or not: used_at is written only when stale, so a busy key is not rewritten on
        # every claim (pruning deletes rows unused for much longer than that).
        values = ", ".join(["(%s, %s)"] * len(keys))
        cursor.execute(
            f"INSERT INTO {self.limit_table} (lock_key, used_at) VALUES {values}"
            " ON CONFLICT (lock_key) DO UPDATE SET used_at = excluded.used_at"
            f" WHERE {self.limit_table}.used_at < %s",
            [*(value for key in keys for value in (key, self.adapt(now))), self._stale(now)],
        )

    def _stale(self, now: datetime) -> Any:
        return self.adapt(now - USED_AT_REFRESH)

    @property
    def limit_table(self) -> str:
        return self.connection.ops.quote_name(LimitLock._meta.db_table)

    def _free_slots(self, cursor: Any, limits: dict[str, int], now: datetime) -> None:
        """Un-park as many rows of each key as it has free slots, oldest first, in the
        transaction that ended (or gave back) claims with those keys, after them."""
        at = self.adapt(now)
        running = self._lock_keys(cursor, sorted(limits), now)
        free = {key: limit - running.get(key, 0) for key, limit in limits.items()}
        free = {key: n for key, n in free.items() if n > 0}
        if not free:
            return
        # Most ends find nobody waiting: one look at the waiting rows' index says which
        # keys have any before the per-key reads below.
        cursor.execute(*self._keys_with_waiting_sql(list(free)))
        waiting = {key for (key,) in cursor.fetchall()}
        free = {key: n for key, n in free.items() if key in waiting}
        if not free:
            return
        # One branch per key, each read in claim order from the waiting rows' index and
        # stopped after that key's free slots.
        branches, params = [], []
        for n, (key, slots) in enumerate(sorted(free.items())):
            branches.append(
                f"SELECT * FROM (SELECT id, queue FROM {self.table}"
                f" WHERE concurrency_key = %s AND {BLOCKED}{NOT_CHAINED}"
                f" ORDER BY priority, id LIMIT %s) AS b{n}"
            )
            params += [key, slots]
        cursor.execute(" UNION ALL ".join(branches), params)
        chosen: list[tuple[int, str]] = list(cursor.fetchall())
        if not chosen:
            return
        for chunk in _chunks([i for i, _ in chosen], 500):
            cursor.execute(
                f"UPDATE {self.table} SET run_at = %s, updated_at = %s"
                f" WHERE id IN ({', '.join(['%s'] * len(chunk))}) AND {BLOCKED}{NOT_CHAINED}",
                [at, at, *chunk],
            )
        self.wake_workers({q for _, q in chosen})

    def _keys_with_waiting_sql(self, keys: list[str]) -> tuple[str, list[Any]]:
        """Which of ``keys`` have waiting rows (read from the waiting rows' index)."""
        marks = ", ".join(["%s"] * len(keys))
        return (
            f"SELECT DISTINCT concurrency_key FROM {self.table}"
            f" WHERE concurrency_key IN ({marks}) AND {BLOCKED}",
            keys,
        )

    def unblock_stranded(self, now: datetime, keys: int = 100) -> None:
        """Un-park waiting rows whose key has free slots although no claim ended to free
        them (a holder deleted by hand): a safety net run by recovery's periodic pass."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT concurrency_key, MAX(concurrency_limit) FROM {self.table}"
                f" WHERE concurrency_key IS NOT NULL AND {BLOCKED}"
                f" GROUP BY concurrency_key LIMIT {int(keys)}"
            )
            limits = {key: limit or 1 for key, limit in cursor.fetchall()}
        if limits:
            with self.write_transaction(), self.connection.cursor() as cursor:
                self._free_slots(cursor, limits, now)

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

    # -- outcomes ----------------------------------------------------------------------

    def record(self, outcomes: Iterable[Outcome], now: datetime, report: bool = False) -> int:
        """Write outcomes; returns how many rows were still under their claim and changed.

        ``DELETE_SUCCESSFUL_JOBS`` / ``DELETE_FAILED_JOBS`` come from the policy of each
        job's queue (``JobsSettings.group_for_queue``), whichever worker ran it.

        With ``report``, each outcome's ``ended`` says what the database recorded: its
        kind, ``cancelled`` for a row whose cancellation was asked for, or "" when its
        claim had been taken away (see :mod:`django_jobs.signals`).

        A row whose end writes to other rows (``follow_up``: it has dependants or is a
        batch member) is left alone by these statements and recorded with its follow-on
        writes in one transaction of its own (``_record_followed``). The flag is read by
        the statement, not at claim time: a dependant may be added while the job runs.
        """
        outcomes = list(outcomes)
        changed = self._write_outcomes(outcomes, now, report, FOLLOW_UP_GUARD)
        if changed < len(outcomes):
            # Some rows were not changed: their claim was lost, or they have follow-ups.
            changed += self._record_followed(outcomes, now, report)
        return changed

    def _write_outcomes(
        self, outcomes: list[Outcome], now: datetime, report: bool, skip: str
    ) -> int:
        """``record``'s statements (each guarded also by ``skip``), run."""
        groups: dict[str, Any] = {}
        deletes: list[Outcome] = []
        #: (assignments, parameters, outcome) of each outcome that is an UPDATE.
        updates: list[tuple[str, list[Any], Outcome]] = []
        #: Statements that must run before the deletes (see the failure branch).
        first: list[tuple[str, list[Any], Outcome]] = []
        #: Outcomes of jobs that publish them: one guarded statement (pair) per job.
        published: list[Published] = []
        at = self.adapt(now)
        done = "locked_at = NULL, locked_by = NULL, claim_token = NULL, expires_at = NULL"
        where = f" WHERE id = %s AND claim_token = %s{skip}"
        for outcome in outcomes:
            job = outcome.job
            group = groups.get(job.queue)
            if group is None:
                group = groups[job.queue] = jobs_settings().policy_for(job.queue)
            publish = _publishes_outcomes(job.name)
            if (
                outcome.kind == OUTCOME_SUCCEEDED
                and group.delete_successful_jobs
                and not outcome.keep
            ):
                if not publish:
                    deletes.append(outcome)  # the hot path: nothing else to prepare
                    continue
                sql = f"DELETE FROM {self.table}{where}"
                published.append(self._event_of(sql, [job.id, job.token], outcome, now))
                continue
            guard = [job.id, job.token]
            #: For a job that publishes its outcome and may have been cancelled meanwhile:
            #: the outcome's statement changes a row whose cancellation was not asked for,
            #: and a second one ends a row whose cancellation was asked for as cancelled.
            #: In this order: once the first has missed, cancelled_at is set for good, so
            #: exactly one of them changes the row and its event says what it became.
            unless_cancelled = ""
            if publish and outcome.kind not in (OUTCOME_SUCCEEDED, OUTCOME_CANCELLED):
                unless_cancelled = " AND cancelled_at IS NULL"
                assignments, params = self._cancelled_set(outcome, at, _late_error(outcome.error))
                cancelled_instead = self._event_of(
                    f"UPDATE {self.table} SET {assignments}{where} AND cancelled_at IS NOT NULL",
                    params + guard,
                    outcome,
                    now,
                    OUTCOME_CANCELLED,
                )
            # Set for every job that leaves its unique rule's states, with a key or not
            # (a per-call key has no rule to tell): on a NULL key it changes nothing, and
            # PostgreSQL keeps the update HOT since the indexed value is unchanged.
            freed = ", unique_key = NULL" if outcome.clear_unique else ""
            if outcome.kind == OUTCOME_SUCCEEDED:
                update = (
                    f"{done}, started_at = %s, finished_at = %s, updated_at = %s{freed}",
                    [self._start_of(outcome), at, at, *guard],
                )
            elif outcome.kind == OUTCOME_RETRY:
                # A row whose cancellation was asked for is not retried: it is cancelled.
                update = (
                    f"{done}, started_at = %s, run_at = {_unless_cancelled('%s', 'NULL')},"
                    f" failed_at = {_unless_cancelled('NULL', '%s')},"
                    f" last_error = {self._error_unless_cancelled()},"
                    f" unique_key = {_unless_cancelled('unique_key', 'NULL')},"
                    " updated_at = %s",
                    [
                        self._start_of(outcome), self.adapt(outcome.run_at), at,
                        outcome.error, _late_error(outcome.error), at, *guard,
                    ],
                )  # fmt: skip
            elif outcome.kind == OUTCOME_CANCELLED:
                assignments, params = self._cancelled_set(outcome, at, outcome.error)
                update = (assignments, params + guard)
            elif outcome.kind == OUTCOME_SNOOZE:
                # The claim spent an attempt: a snooze gives it back, and counts itself, in
                # the same statement (a row whose cancellation was asked for is cancelled).
                update = (
                    f"{done}, started_at = %s, run_at = {_unless_cancelled('%s', 'NULL')},"
                    f" failed_at = {_unless_cancelled('NULL', '%s')},"
                    f" last_error = {self._error_unless_cancelled()},"
                    f" unique_key = {_unless_cancelled('unique_key', 'NULL')},"
                    f" attempts = {_unless_cancelled('attempts - 1', 'attempts')},"
                    f" snoozes = {_unless_cancelled('COALESCE(snoozes, 0) + 1', 'snoozes')},"
                    " updated_at = %s",
                    [
                        self._start_of(outcome), self.adapt(outcome.run_at), at,
                        outcome.error, _late_error(outcome.error), at, *guard,
                    ],
                )  # fmt: skip
            elif group.delete_failed_jobs and not outcome.keep:
                # Cancelled rows are always kept: one whose cancellation was asked for is
                # recorded so first (which ends the claim), and the guarded DELETE skips it.
                if publish:
                    sql = f"DELETE FROM {self.table}{where}{unless_cancelled}"
                    published += [self._event_of(sql, guard, outcome, now), cancelled_instead]
                    continue
                assignments, params = self._cancelled_set(outcome, at, _late_error(outcome.error))
                first.append(
                    (
                        f"UPDATE {self.table} SET {assignments} WHERE id = %s"
                        f" AND claim_token = %s AND cancelled_at IS NOT NULL{skip}",
                        params + guard,
                        outcome,
                    )
                )
                deletes.append(outcome)
                continue
            else:
                kept_key = "NULL" if outcome.clear_unique else "unique_key"
                update = (
                    f"{done}, started_at = %s, run_at = NULL, failed_at = %s,"
                    f" last_error = {self._error_unless_cancelled()},"
                    f" unique_key = {_unless_cancelled(kept_key, 'NULL')},"
                    " updated_at = %s",
                    [
                        self._start_of(outcome), at, outcome.error,
                        _late_error(outcome.error), at, *guard,
                    ],
                )  # fmt: skip
            update = self._with_result(outcome, *update, now) if outcome.keep else update
            if publish:
                sql = f"UPDATE {self.table} SET {update[0]}{where}{unless_cancelled}"
                published.append(self._event_of(sql, update[1], outcome, now))
                if unless_cancelled:
                    published.append(cancelled_instead)
            else:
                updates.append((*update, outcome))
        with self._ending(_limits_of(outcome.job for outcome in outcomes)):
            if not report:
                statements = [(sql, params) for sql, params, _ in first]
                statements += self._statements(deletes, updates, skip)
                return self._write(statements, published, now)
            return self._record_reporting(first, deletes, updates, published, now, skip)

    @contextmanager
    def _ending(self, limits: dict[str, int]) -> Iterator[None]:
        """Around statements that end (or give back) claims: with ``limits`` (the
        concurrency keys of those claims), one transaction that then frees their slots."""
        if not limits:
            yield
            return
        with self.write_transaction():
            yield
            with self.connection.cursor() as cursor:
                self._free_slots(cursor, limits, clock.now())

    def _record_followed(self, outcomes: list[Outcome], now: datetime, report: bool) -> int:
        """Record the outcomes of rows with follow-ups that ``record`` left alone."""
        tokens: dict[int, int] = {}
        for chunk in _chunks([outcome.job.id for outcome in outcomes], 500):
            tokens.update(
                Job.objects.using(self.alias)
                .filter(pk__in=chunk, follow_up=True)
                .values_list("id", "claim_token")
            )
        changed = 0
        for outcome in outcomes:
            job = outcome.job
            if tokens.get(job.id) == job.token:
                gone = FLOW_SUCCEEDED if outcome.kind == OUTCOME_SUCCEEDED else FLOW_FAILED
                changed += self._followed(
                    job,
                    lambda outcome=outcome: self._write_outcomes([outcome], now, report, ""),
                    now, gone, reason_of(outcome.error),
                )  # fmt: skip
        return changed

    def _followed(
        self, job: ClaimedJob, write: Any, now: datetime, gone: str, gone_reason: str
    ) -> int:
        """Run ``write()`` (statements that end or give back ``job``'s claim; returns what
        it changed) and the follow-on writes of the end they record, in one transaction;
        the row is locked first, under its claim token. ``gone``: the outcome to report
        when the statements deleted the row."""
        queues: set[str] = set()
        with self.write_transaction():
            held = (
                Job.objects.using(self.alias)
                .select_for_update()
                .filter(pk=job.id, claim_token=job.token)
                .values_list("cancelled_at", flat=True)
            )
            if not held:
                return 0  # the claim was lost meanwhile: nothing to write
            if gone == FLOW_FAILED and held[0] is not None:
                gone = FLOW_CANCELLED
            changed = write()
            end = self._end_of(job.id, gone, gone_reason)
            if end is not None:
                queues = flows.ended(self.alias, job.id, *end, now)
        if queues:
            self.wake_workers(queues)
        return changed

    def _end_of(self, job_id: int, gone: str, gone_reason: str) -> tuple[str, str] | None:
        """How a row ended (outcome, reason), read in the transaction that ended it; None
        when it has not ended (retried, snoozed or given back)."""
        row = (
            Job.objects.using(self.alias)
            .filter(pk=job_id)
            .values_list("failed_at", "finished_at", "cancelled_at", "last_error")
            .first()
        )
        if row is None:
            return gone, gone_reason
        failed_at, finished_at, cancelled_at, last_error = row
        if finished_at is not None:
            return FLOW_SUCCEEDED, ""
        if failed_at is None:
            return None
        return (FLOW_CANCELLED if cancelled_at else FLOW_FAILED), reason_of(last_error)

    def _event_of(
        self, sql: str, params: list[Any], outcome: Outcome, now: datetime, kind: str = ""
    ) -> Published:
        """``sql`` with the event it publishes on the job's channel when it changes the row."""
        job = outcome.job
        kind = kind or outcome.kind
        event: dict[str, Any] = {"state": EVENT_STATES[kind], "job_id": job.id}
        if kind in (OUTCOME_SUCCEEDED, OUTCOME_FAILED, OUTCOME_CANCELLED):
            event["done"] = True
        if kind != OUTCOME_SUCCEEDED:
            event["attempt"] = job.attempts
        if kind in (OUTCOME_RETRY, OUTCOME_SNOOZE) and outcome.run_at is not None:
            event["run_at"] = clock.at(outcome.run_at).isoformat()
        return sql, params, job_channel(job.id), _compact(event), outcome, kind

    def _publish_outcomes(self, cursor: Any, published: Sequence[Published], now: datetime) -> int:
        """Run each statement of ``published``, and publish its event (and set its
        outcome's ``ended``) when it changed the row; the rows changed."""
        changed = 0
        for sql, params, channel, payload, outcome, kind in published:
            cursor.execute(sql, params)
            if cursor.rowcount > 0:
                changed += cursor.rowcount
                if channel is not None:
                    cursor.execute(*self.publish_statement(channel, payload, now))
                if outcome is not None:
                    outcome.ended = kind
        return changed

    def _record_reporting(
        self,
        first: list[tuple[str, list[Any], Outcome]],
        deletes: list[Outcome],
        updates: list[tuple[str, list[Any], Outcome]],
        published: Sequence[Published],
        now: datetime,
        skip: str = "",
    ) -> int:
        """``record``'s statements, setting each outcome's ``ended`` from what they changed.

        An UPDATE names one row, so its row count says whether the claim still held. A
        retry, snooze or kept failure of a row whose cancellation was asked for ended it
        cancelled: read back in the same transaction, where no other writer can touch
        the rows. A DELETE covers many rows: when it deleted fewer than it named (a claim
        taken away, which is rare), the rows still there are the ones it did not delete.
        """
        statements = [(sql, params) for sql, params, _ in first]
        statements += self._statements(deletes, updates, skip)
        errored = [o for _, _, o in updates if o.kind not in _PLAIN_ENDS]
        with self.atomic_if(len(statements) > 1 or bool(errored) or bool(published)):
            with self.connection.cursor() as cursor:
                also = self._publish_outcomes(cursor, published, now)
                counts = []
                for sql, params in statements:
                    cursor.execute(sql, params)
                    counts.append(max(cursor.rowcount, 0))
                kept_cancelled = {o.job.id for (*_, o), n in zip(first, counts, strict=False) if n}
                for outcome in deletes:
                    outcome.ended = outcome.kind
                by_id = {outcome.job.id: outcome for outcome in deletes}
                done = len(first)
                for _, ids in _delete_chunks(deletes):
                    expected = sum(1 for job_id in ids if job_id not in kept_cancelled)
                    if counts[done] < expected:
                        for job_id in self._among(cursor, ids):
                            by_id[job_id].ended = ""
                    done += 1
                for job_id in kept_cancelled:
                    by_id[job_id].ended = OUTCOME_CANCELLED
                for (*_, outcome), count in zip(updates, counts[done:], strict=True):
                    outcome.ended = outcome.kind if count else ""
                written = {o.job.id: o for o in errored if o.ended}
                if written:
                    for job_id in self._among(cursor, list(written), "cancelled_at IS NOT NULL"):
                        written[job_id].ended = OUTCOME_CANCELLED
        return sum(counts) + also

    def _among(
        self, cursor: Any, ids: list[int], condition: str = "", params: Sequence[Any] = ()
    ) -> list[int]:
        """Which of ``ids`` exist (and meet ``condition``, with ``params``), on ``cursor``."""
        found: list[int] = []
        where = f" AND {condition}" if condition else ""
        for chunk in _chunks(ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT id FROM {self.table} WHERE id IN ({marks}){where}", [*chunk, *params]
            )
            found += [row[0] for row in cursor.fetchall()]
        return found

    def _cancelled_set(self, outcome: Outcome, at: Any, note: str) -> tuple[str, list[Any]]:
        """The assignments that record a running job as cancelled, and their parameters."""
        # cancelled_at is assigned last: MySQL evaluates SET left to right.
        return (
            "locked_at = NULL, locked_by = NULL, claim_token = NULL, expires_at = NULL,"
            " started_at = %s, run_at = NULL, failed_at = %s,"
            f" last_error = {self.concat('last_error', '%s')}, unique_key = NULL,"
            " updated_at = %s, cancelled_at = COALESCE(cancelled_at, %s)",
            [self._start_of(outcome), at, note, at, at],
        )

    def _error_unless_cancelled(self) -> str:
        """``last_error``: the attempt's error (first %s), or for a row whose cancellation
        was asked for, the cancellation's words followed by the error (second %s)."""
        return _unless_cancelled("%s", self.concat("last_error", "%s"))

    def concat(self, left: str, right: str) -> str:
        """SQL joining two strings."""
        return f"{left} || {right}"

    #: SQL appending the JSON object parameter, plus ``worker_id`` read from the row's
    #: ``locked_by``, to ``attempt_log``. It comes first in the SET list: MySQL evaluates
    #: assignments left to right, and ``locked_by`` is cleared after it.
    attempt_log_append = ""

    def _with_result(
        self, outcome: Outcome, assignments: str, params: list[Any], now: datetime
    ) -> tuple[str, list[Any]]:
        """An outcome's UPDATE that also stores its return value and logs the attempt."""
        extra: list[str] = []
        values: list[Any] = []
        if outcome.log_attempt:
            started = clock.at(outcome.started_at)
            entry = {
                "started_at": None if started is None else started.isoformat(),
                "finished_at": now.isoformat(),
                "error": None
                if outcome.kind == OUTCOME_SUCCEEDED
                else {"exception_class_path": outcome.error_class, "traceback": outcome.error},
            }
            extra.append(f"attempt_log = {self.attempt_log_append}")
            values.append(json.dumps(entry))
        if outcome.kind == OUTCOME_SUCCEEDED and outcome.return_json is not None:
            extra.append(f"return_value = {self.json_param}")
            values.append(outcome.return_json)
        return ", ".join([*extra, assignments]), [*values, *params]

    def _start_of(self, outcome: Outcome) -> Any:
        return self.adapt(clock.at(outcome.started_at))

    def _write(
        self,
        statements: list[tuple[str, list[Any]]],
        published: Sequence[Published] = (),
        now: datetime | None = None,
    ) -> int:
        """Run the ``published`` statements, each followed by its event when it changed a
        row, then ``statements``; one transaction when there is more than one statement."""
        if not statements and not published:
            return 0
        several = len(statements) + 2 * len(published) > 1
        with self.atomic_if(several), self.connection.cursor() as cursor:
            changed = self._publish_outcomes(cursor, published, now or clock.now())
            for sql, params in statements:
                cursor.execute(sql, params)
                changed += max(cursor.rowcount, 0)
        return changed

    def _statements(
        self,
        deletes: list[Outcome],
        updates: list[tuple[str, list[Any], Outcome]],
        guard: str = "",
    ) -> list[tuple[str, list[Any]]]:
        statements: list[tuple[str, list[Any]]] = []
        for token, chunk in _delete_chunks(deletes):
            marks = ", ".join(["%s"] * len(chunk))
            statements.append(
                (
                    f"DELETE FROM {self.table} WHERE id IN ({marks}) AND claim_token = %s{guard}",
                    [*chunk, token],
                )
            )
        for assignments, params, _ in updates:
            statements.append(
                (
                    f"UPDATE {self.table} SET {assignments}"
                    f" WHERE id = %s AND claim_token = %s{guard}",
                    params,
                )
            )
        return statements

    def atomic_if(self, needed: bool):
        """A transaction around several statements; a single statement is atomic alone."""
        if needed:
            return transaction.atomic(using=self.alias)
        return nullcontext()

    def mark_started(self, marks: Sequence[StartMark], now: datetime) -> int:
        """Record that claimed jobs began to run, so recovery charges them an attempt."""
        statements = [
            (
                f"UPDATE {self.table} SET started_at = %s, expires_at = %s"
                " WHERE id = %s AND claim_token = %s",
                [self.adapt(m.started_at), self.adapt(m.expires_at), m.job.id, m.job.token],
            )
            for m in marks
        ]
        return self._write(statements)

    def release(
        self,
        jobs: Sequence[ClaimedJob],
        now: datetime,
        cancelled: list[ClaimedJob] | None = None,
    ) -> int:
        """Give claimed rows back unrun: the lock is cleared and the attempt refunded.

        A row whose cancellation was asked for is not given back: it ends cancelled, and
        is appended to ``cancelled`` when a list is passed (read back in the same
        transaction: rows this call ended carry its ``updated_at``).

        A row with follow-ups that this would end is given back with its follow-on
        writes, in a transaction of its own.
        """
        jobs = list(jobs)
        changed = self._release(jobs, now, cancelled, RELEASE_GUARD)
        if changed < len(jobs):
            tokens = dict(
                Job.objects.using(self.alias)
                .filter(pk__in=[job.id for job in jobs], follow_up=True)
                .filter(cancelled_at__isnull=False)
                .values_list("id", "claim_token")
            )
            for job in jobs:
                if tokens.get(job.id) == job.token:
                    changed += self._followed(
                        job, lambda job=job: self._release([job], now, cancelled, ""),
                        now, FLOW_CANCELLED, "",
                    )  # fmt: skip
        return changed

    def _release(
        self,
        jobs: Sequence[ClaimedJob],
        now: datetime,
        cancelled: list[ClaimedJob] | None,
        skip: str,
    ) -> int:
        statements = []
        at = self.adapt(now)
        # A job that publishes its outcome: given back by a statement of its own unless
        # its cancellation was asked for, then ended cancelled (with the event) if it was;
        # in this order, exactly one of them changes the row (see record()).
        release_set = (
            f"UPDATE {self.table} SET locked_at = NULL, locked_by = NULL,"
            " claim_token = NULL, started_at = NULL, expires_at = NULL, attempts = attempts - 1,"
        )
        published: list[Published] = []
        for job in jobs:
            if not _publishes_outcomes(job.name):
                continue
            guard = [job.id, job.token]
            event = {"state": "cancelled", "job_id": job.id, "attempt": job.attempts, "done": True}
            published += [
                (
                    f"{release_set} updated_at = %s WHERE id = %s AND claim_token = %s"
                    " AND cancelled_at IS NULL",  # never ends the job: no follow-ups
                    [at, *guard], None, "", None, "",
                ),
                (
                    f"{release_set} failed_at = %s, run_at = NULL, unique_key = NULL,"
                    " updated_at = %s WHERE id = %s AND claim_token = %s"
                    f" AND cancelled_at IS NOT NULL{skip}",
                    [at, at, *guard], job_channel(job.id), _compact(event), None,
                    OUTCOME_CANCELLED,
                ),
            ]  # fmt: skip
        plain = [job for job in jobs if not _publishes_outcomes(job.name)]
        for token, ids in _by_token(plain):
            marks = ", ".join(["%s"] * len(ids))
            statements.append(
                (
                    f"UPDATE {self.table} SET locked_at = NULL, locked_by = NULL,"
                    " claim_token = NULL, started_at = NULL, expires_at = NULL,"
                    f" attempts = attempts - 1, failed_at = {_unless_cancelled('NULL', '%s')},"
                    f" run_at = {_unless_cancelled('run_at', 'NULL')},"
                    f" unique_key = {_unless_cancelled('unique_key', 'NULL')}, updated_at = %s"
                    f" WHERE id IN ({marks}) AND claim_token = %s{skip}",
                    [at, at, *ids, token],
                )
            )
        with self._ending(_limits_of(jobs)):
            if cancelled is None:
                changed = self._write(statements, published, now)
            else:
                with self.atomic_if(True):
                    changed = self._write(statements, published, now)
                    if changed:
                        with self.connection.cursor() as cursor:
                            ended = set(
                                self._among(
                                    cursor, [job.id for job in jobs],
                                    "cancelled_at IS NOT NULL AND failed_at IS NOT NULL"
                                    " AND updated_at = %s",
                                    [at],
                                )
                            )  # fmt: skip
                        cancelled += [job for job in jobs if job.id in ended]
        if changed:
            # Idle workers elsewhere can run them now, not at their next poll.
            self.wake_workers({job.queue for job in jobs})
        return changed

    def set_progress(self, job: ClaimedJob, percent: int, message: str) -> None:
        """Store progress, and publish it on the job's channel in the same transaction."""
        now = clock.now()
        with transaction.atomic(using=self.alias):
            changed = (
                Job.objects.using(self.alias)
                .filter(pk=job.id, claim_token=job.token)
                .update(progress=percent, progress_message=message, updated_at=now)
            )
            if changed:
                event = {"progress": percent, "message": message, "job_id": job.id}
                self.publish(job_channel(job.id), _compact(event), now)

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
            if _publishes_outcomes(name):
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
        for chunk in _chunks(ids, 500):
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


#: Appended to the outcome statements' guard: rows with follow-ups take the other path.
FOLLOW_UP_GUARD = " AND follow_up IS NULL"
#: ``release`` ends a row only when its cancellation was asked for.
RELEASE_GUARD = " AND (follow_up IS NULL OR cancelled_at IS NULL)"

HELD_COLUMNS = (*CLAIM_COLUMNS, "claim_token", "locked_by", "started_at", "expires_at")


def _held(row: Sequence[Any]) -> HeldRow:
    claim_token, locked_by, started_at, expires_at = row[len(CLAIM_COLUMNS) :]
    return HeldRow(ClaimedJob.from_row(row, claim_token), locked_by or "", started_at, expires_at)


#: How stale a LimitLock row's used_at may get before a lock writes it again.
USED_AT_REFRESH = timedelta(minutes=10)

#: A row waiting for a slot of its concurrency limit (with a key: see claim_limited).
BLOCKED = "run_at IS NULL AND locked_at IS NULL AND failed_at IS NULL AND finished_at IS NULL"
#: A row without ``run_at`` that waits for other jobs (``after=``, a batch callback) is
#: not parked by its concurrency limit: only the end of its prerequisites makes it due.
NOT_CHAINED = " AND (waiting_for IS NULL OR waiting_for = 0)"


def _limits_of(jobs: Iterable[ClaimedJob]) -> dict[str, int]:
    """Each concurrency key among ``jobs`` and its limit."""
    return {
        job.concurrency_key: job.concurrency_limit or 1
        for job in jobs
        if job.concurrency_key is not None
    }


def has_meta(rows: Sequence[NewJob]) -> bool:
    return any(row.meta is not None for row in rows)


def has_tag(rows: Sequence[NewJob]) -> bool:
    return any(row.tag is not None for row in rows)


def has_limits(rows: Sequence[NewJob]) -> bool:
    return any(row.concurrency_key is not None for row in rows)


#: The columns every insert writes; optional ones follow only when a row has them, so
#: the plain insert stays as it was.
INSERT_COLUMNS = (
    "name, args, kwargs, queue, priority, run_at, attempts, last_error, progress_message,"
    " created_at, updated_at"
)
LIMIT_COLUMNS = ", concurrency_key, concurrency_limit"


def _optional_columns(with_meta: bool, with_tag: bool, with_limits: bool) -> str:
    """The optional columns of an insert, in ``_insert_values``' order."""
    return (
        (", meta" if with_meta else "")
        + (", tag" if with_tag else "")
        + (LIMIT_COLUMNS if with_limits else "")
    )


def _unless_cancelled(value: str, cancelled: str) -> str:
    """SQL: ``value`` for a row whose cancellation was not asked for, else ``cancelled``."""
    return f"CASE WHEN cancelled_at IS NULL THEN {value} ELSE {cancelled} END"


def _late_error(error: str) -> str:
    """What follows the cancellation's words when the attempt ended on its own first."""
    return "\nThe attempt ended before its worker learned of the cancellation:\n" + error


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _by_token(jobs: Iterable[ClaimedJob]) -> list[tuple[int, list[int]]]:
    """Job ids grouped by claim token: one guarded statement per claim."""
    groups: dict[int, list[int]] = {}
    for job in jobs:
        groups.setdefault(job.token, []).append(job.id)
    return list(groups.items())


def _delete_chunks(deletes: list[Outcome]) -> Iterable[tuple[int, list[int]]]:
    """(token, ids) of each DELETE that records ``deletes``: one per claim, 500 ids at most."""
    for token, ids in _by_token(outcome.job for outcome in deletes):
        for chunk in _chunks(ids, 500):
            yield token, chunk


#: Outcomes a row whose cancellation was asked for keeps as they are.
_PLAIN_ENDS = frozenset({OUTCOME_SUCCEEDED, OUTCOME_CANCELLED})


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
