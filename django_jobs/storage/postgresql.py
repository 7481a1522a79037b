"""PostgreSQL: one-statement claims with SKIP LOCKED, and LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import hashlib
import logging
import select
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from django.db import connections
from django.db.backends.postgresql.psycopg_any import is_psycopg3

from ..conf import jobs_settings
from . import pooler
from .base import INSERT_COLUMNS, Storage, has_limits, has_meta, has_tag, optional_columns
from .eventreading import EventReader, RawEvent
from .limits import BLOCKED
from .rows import CLAIM_COLUMNS, ClaimedJob, NewJob, StartMark, chunks, new_token
from .waiting import Waiter, drain

logger = logging.getLogger("django_jobs.worker")

CHANNEL = "django_jobs"
#: The payload of a notification that a pause or a cancellation changed. No queue can
#: have this name (a queue name has at most 64 characters; this is longer).
CONTROLS = ":django_jobs:controls:" + "-" * 48


if is_psycopg3:
    import psycopg


#: The columns of a multi-row insert: (column, PostgreSQL type sent, cast to the column).
_UNNEST_COLUMNS = (
    ("name", "text", ""), ("args", "text", "::jsonb"), ("kwargs", "text", "::jsonb"),
    ("queue", "text", ""), ("priority", "int", ""), ("run_at", "timestamptz", ""),
)  # fmt: skip


class PostgreSQLStorage(Storage):
    vendor = "postgresql"
    now_sql = "SELECT STATEMENT_TIMESTAMP() AT TIME ZONE 'UTC'"

    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        #: (meta, tag, limits, notify) -> the one-row INSERT of that shape.
        self._one_row_sql: dict[tuple[bool, ...], str] = {}

    json_param = "%s::jsonb"
    attempt_log_append = (
        "COALESCE(attempt_log, '[]'::jsonb)"
        " || jsonb_build_array(%s::jsonb || jsonb_build_object('worker_id', locked_by))"
    )

    def placeholders(self) -> str:
        return "%s, %s::jsonb, %s::jsonb, %s, %s, %s, 0, '', '', %s, %s"

    def insert(self, rows: Sequence[NewJob], now: datetime) -> list[int]:
        if not is_psycopg3:  # psycopg2: Django's cursor and the portable VALUES form
            return sorted(super().insert(rows, now))
        one = len(rows) == 1
        sql, params = self._one_row_insert(rows[0], now) if one else self._insert_sql(rows, now)
        connection = self.connection
        connection.ensure_connection()
        # Asked before the cursor opens: the first time, it runs a statement of its own.
        prepare = one and pooler.may_prepare(connection)
        raw = connection.connection
        # A plain psycopg cursor binds parameters on the server, in C: Django's cursor
        # binds on the client in Python, which costs more than the INSERT for 1,000 rows.
        with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            if prepare:
                pooler.execute_prepared(raw, cursor, sql, params)
            else:
                cursor.execute(sql, params)
            if one:
                return [cursor.fetchone()[0]]
            # Ids come from one sequence in insertion order, which is the rows' order.
            return sorted(row[0] for row in cursor.fetchall())

    def _one_row_insert(self, row: NewJob, now: datetime) -> tuple[str, list]:
        """The INSERT of one row (with its NOTIFY when it is due), from SQL text built
        once per shape: what ``later()`` runs, so it is prepared (``execute_prepared``)."""
        notify = row.run_at is not None and row.run_at <= now
        limits = row.concurrency_key is not None or row.rate_key is not None
        key = (row.meta is not None, row.tag is not None, limits, notify)
        sql = self._one_row_sql.get(key)
        if sql is None:
            sql = self._one_row_sql[key] = self._one_row_text(*key)
        # psycopg adapts datetimes itself: Django's adapt() would return them unchanged.
        params = [row.name, row.args, row.kwargs, row.queue, row.priority, row.run_at, now, now]
        if row.meta is not None:
            params.append(row.meta)
        if row.tag is not None:
            params.append(row.tag)
        if limits:
            params += [row.concurrency_key, row.concurrency_limit, row.rate_key, row.rate_limit]
        if notify:
            params.append(row.queue)
        return sql, params

    def _one_row_text(self, with_meta: bool, with_tag: bool, limits: bool, notify: bool) -> str:
        more = (
            (", %s::jsonb" if with_meta else "")
            + (", %s" if with_tag else "")
            + (", %s, %s, %s, %s" if limits else "")
        )
        sql = (
            f"INSERT INTO {self.table} ({INSERT_COLUMNS}"
            f"{optional_columns(with_meta, with_tag, limits)})"
            f" VALUES ({self.placeholders()}{more}) RETURNING id"
        )
        if not notify:  # not due yet: nothing to wake
            return sql
        # NOTIFY inside the inserting statement: one round trip, delivered at commit and
        # never for a rolled-back job.
        return f"{sql}, pg_notify('{CHANNEL}', %s)"

    def _insert_sql(self, rows: Sequence[NewJob], now: datetime) -> tuple[str, list]:
        if not is_psycopg3 or has_limits(rows):
            sql, params = super()._insert_sql(rows, now)
        else:
            sql, params = self._unnest_insert(rows, now)
        # A row without run_at waits for other jobs (django_jobs.chaining): nothing to wake.
        due = sorted({row.queue for row in rows if row.run_at is not None and row.run_at <= now})
        if not due:
            return sql, params
        # NOTIFY inside the inserting statement: one round trip, delivered at commit and
        # never for a rolled-back job. One notification per queue, not per row.
        if len(due) == 1:  # the common case, and a cheaper plan than unnest()
            return (
                f"WITH ins AS ({sql}), woke AS (SELECT pg_notify('{CHANNEL}', %s))"
                " SELECT id FROM ins, woke",
                [*params, due[0]],
            )
        return (
            f"WITH ins AS ({sql}) SELECT id FROM ins WHERE (SELECT count(*) FROM"
            f" (SELECT pg_notify('{CHANNEL}', q) FROM unnest(%s::text[]) AS q) AS woke) >= 0",
            [*params, due],
        )

    def _insert_if_new(self, row: NewJob, now: datetime) -> int | None:
        if row.run_at > now:
            return super()._insert_if_new(row, now)
        sql, params = self._unique_insert_sql(row, now)
        # The NOTIFY rides on the inserted row: a duplicate wakes nobody.
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"WITH ins AS ({sql} ON CONFLICT (unique_key) DO NOTHING RETURNING id)"
                f" SELECT id, pg_notify('{CHANNEL}', %s) FROM ins",
                [*params, row.queue],
            )
            found = cursor.fetchone()
        return None if found is None else found[0]

    def _unnest_insert(self, rows: Sequence[NewJob], now: datetime) -> tuple[str, list]:
        # One array per column whose values differ between rows, sent in binary (%b),
        # and one parameter for a column that has the same value in every row (a
        # later_many's name, queue, priority and run_at; nearly always its kwargs):
        # far less to build, send and parse than a parameter per row and column. The
        # arguments are always an array: unnest() makes the rows. Only for a psycopg 3
        # cursor (see insert()). ``meta`` (a traced later_many) and ``tag`` only when a
        # row has one, NULL for the others.
        columns = list(_UNNEST_COLUMNS)
        if has_meta(rows):
            columns.append(("meta", "text", "::jsonb"))
        if has_tag(rows):
            columns.append(("tag", "text", ""))
        selected, arrays, names, scalars, lists = [], [], [], [], []
        for i, (column, kind, cast) in enumerate(columns):
            values = list(map(attrgetter(column), rows))
            if column != "args" and values.count(values[0]) == len(values):
                selected.append(f"%s::{kind}{cast}")
                scalars.append(values[0])
            else:
                selected.append(f"c{i}{cast}")
                arrays.append(f"%b::{kind}[]")
                names.append(f"c{i}")
                lists.append(values)
        return (
            f"INSERT INTO {self.table} ({', '.join(column for column, _, _ in columns)},"
            " attempts, last_error, progress_message, created_at, updated_at)"
            f" SELECT {', '.join(selected)}, 0, '', '', %s, %s"
            f" FROM unnest({', '.join(arrays)}) AS u({', '.join(names)}) RETURNING id",
            [*scalars, now, now, *lists],
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
        columns = ", ".join(f"t.{c}" for c in CLAIM_COLUMNS)
        # ARRAY(…) is an init plan: the pick runs once, and the rows are then found by
        # primary key. Joined to the picked ids instead (a CTE), the planner estimates a
        # hash join and reads the whole table for every claim, its dead rows included.
        sql = (
            f"UPDATE {self.table} AS t SET {self.CLAIM_SET}, attempts = t.attempts + 1"
            f" WHERE t.id = ANY(ARRAY({pick})) RETURNING {columns}"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [at, worker, token, at, *params])
            jobs = [ClaimedJob.from_row(row, token) for row in cursor.fetchall()]
        jobs.sort(key=ClaimedJob.sort_key)
        return jobs

    def _keys_with_waiting_sql(self, keys: list[str]) -> tuple[str, list]:
        # One probe per key: with an IN list the planner may read every waiting row
        # through the due index (run_at IS NULL) instead of the key's entries.
        return (
            f"SELECT k FROM unnest(%s::text[]) AS k WHERE EXISTS (SELECT 1 FROM {self.table}"
            f" WHERE concurrency_key = k AND {BLOCKED})",
            [keys],
        )

    def estimated_count(self) -> int | None:
        # The planner's own estimate: rows per page from the last ANALYZE, scaled by the
        # table's current size, so it follows growth between autovacuum runs.
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT CASE WHEN c.reltuples < 0 OR c.relpages = 0 THEN NULL ELSE"
                " (c.reltuples / c.relpages * (pg_relation_size(c.oid)"
                " / current_setting('block_size')::int))::bigint END"
                " FROM pg_class c WHERE c.oid = to_regclass(%s)",
                [self.table],
            )
            row = cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- outcomes and starts ------------------------------------------------------------
    # A flush's starts are one statement, each row matched on its id and its own claim
    # token (the fencing) against arrays; ``t.id = ANY(…)`` lets the planner find the rows
    # by primary key before it matches them to the pairs. Deletes stay one per claim
    # (``id = ANY(%s) AND claim_token = %s``): the same join for them cost PostgreSQL about
    # twice the CPU per no-op job in a drain (bench.drain_cost: 82-86 against 34-56 µs).

    def ids_among(self, ids: list[int]) -> tuple[str, list[Any]]:
        # One array parameter: the statement's text is the same for every batch, and the
        # client does not parse a placeholder per id (Django binds on the client).
        return "id = ANY(%s)", [list(ids)]

    _PAIRS = "t.id = ANY(%s::bigint[]) AND t.id = d.job AND t.claim_token = d.token"

    def mark_started(self, marks: Sequence[StartMark], now: datetime) -> int:
        statements = []
        for chunk in chunks(list(marks), 5000):
            ids = [mark.job.id for mark in chunk]
            statements.append(
                (
                    f"UPDATE {self.table} AS t SET started_at = d.started, expires_at ="
                    " d.expires FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[],"
                    f" %s::timestamptz[]) AS d(job, token, started, expires) WHERE {self._PAIRS}",
                    [
                        ids,
                        [mark.job.token for mark in chunk],
                        [self.adapt(mark.started_at) for mark in chunk],
                        [self.adapt(mark.expires_at) for mark in chunk],
                        ids,
                    ],
                )
            )
        return self._write(statements)

    def waiter(self, queues: tuple[str, ...] | None) -> Waiter:
        listen = self.listen_alias()
        if listen is None:
            pooler.warn_polling(self.alias)
            return super().waiter(queues)  # a cheap indexed probe every 50 ms
        return NotifyWaiter(self, queues, listen)

    def listen_alias(self) -> str | None:
        """The alias to LISTEN on: ``JOBS["LISTEN_DATABASE"]``, else the jobs database
        itself unless it is reached through a pooler (None: nowhere, poll instead)."""
        listen = jobs_settings().listen_database(self.alias)
        if listen is not None:
            return listen
        return None if pooler.behind_pooler(self.connection) else self.alias

    def notify_controls(self) -> None:
        # On the channel workers already LISTEN on; delivered at commit.
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_notify('{CHANNEL}', %s)", [CONTROLS])

    def control_waiter(self) -> Waiter:
        listen = self.listen_alias()
        if listen is None:
            return super().control_waiter()
        return NotifyWaiter(self, (CONTROLS,), listen)

    def set_lock_wait(self, connection, seconds: float) -> None:
        if pooler.behind_pooler(connection):
            pooler.bound_per_transaction(connection, seconds)
            return
        with connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{int(seconds * 1000)}ms'")

    def publish_statement(self, channel: str, payload: str, now: datetime) -> tuple[str, list]:
        # Delivered at commit, and never for a rolled-back transaction; no row is kept.
        return "SELECT pg_notify(%s, %s)", [notify_channel(channel), payload]

    def event_reader(self, poll_interval: float) -> EventReader:
        return NotifyEventReader(self)

    def wake_workers(self, queues: Iterable[str]) -> None:
        queues = sorted(set(queues))
        if not queues:
            return
        # Delivered at commit when called inside a transaction, like the insert's NOTIFY.
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(pg_notify('{CHANNEL}', q)) FROM unnest(%s::text[]) AS q", [queues]
            )


class NotifyWaiter(Waiter):
    """LISTENs on its own connection; falls back to plain sleeping while it cannot."""

    RECONNECT_DELAY = 1.0

    def __init__(
        self, storage: PostgreSQLStorage, queues: tuple[str, ...] | None, listen: str
    ) -> None:
        self.storage = storage
        self.queues = queues
        self.listen = listen  # the alias whose connection parameters LISTEN uses
        self.conn = None
        self.next_attempt = 0.0

    def _connect(self) -> None:
        if not is_psycopg3:
            return  # LISTEN needs psycopg 3's notifies(): poll every SLEEP_DELAY instead
        if time.monotonic() < self.next_attempt:
            return
        try:
            self.conn = listen_connection(self.listen)
            self.conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # the database may be restarting: poll until it is back
            logger.warning("cannot LISTEN for new jobs (%s); polling instead", exc)
            self.close()
            self.next_attempt = time.monotonic() + self.RECONNECT_DELAY

    def start(self) -> None:
        self._connect()

    def wait(self, timeout: float, wake_fd: int) -> bool:
        if self.conn is None:
            self._connect()
            if self.conn is not None:
                return True  # reconnected: what was sent meanwhile is lost, so look now
        fds = [wake_fd] if self.conn is None else [wake_fd, self.conn.fileno()]
        if self.conn is None:
            timeout = min(timeout, self.RECONNECT_DELAY)
        readable, _, _ = select.select(fds, [], [], max(0.0, timeout))
        woken = False
        if wake_fd in readable:
            drain(wake_fd)
            woken = True
        if self.conn is not None and self.conn.fileno() in readable:
            woken = self._relevant_notifications() or woken
        return woken

    def _relevant_notifications(self) -> bool:
        try:
            payloads = [n.payload for n in self.conn.notifies(timeout=0)]
        except Exception as exc:
            logger.warning("lost the LISTEN connection (%s); reconnecting", exc)
            self.close()
            return True  # something may have happened meanwhile: look
        if self.queues is None:
            # A control message concerns the worker's control thread, not its claims.
            return any(p != CONTROLS and p not in self.paused for p in payloads)
        return any(payload in self.queues and payload not in self.paused for payload in payloads)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None


def listen_connection(alias: str):
    """A psycopg connection of its own (autocommit) to ``alias``, for LISTEN."""
    params = connections[alias].get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params, autocommit=True)


def notify_channel(channel: str) -> str:
    """The NOTIFY channel behind an event channel: a digest, since a channel name may be
    longer than PostgreSQL's 63-byte identifiers and hold any character."""
    return "django_jobs_ev_" + hashlib.blake2b(channel.encode(), digest_size=16).hexdigest()


class NotifyEventReader(EventReader):
    """LISTENs on a connection of its own (autocommit) for the subscribed channels.

    Notifications sent while it is disconnected are lost: PostgreSQL keeps none for a
    listener that is gone. ``read`` raises then, and the hub reconnects.
    """

    def __init__(self, storage: PostgreSQLStorage) -> None:
        self.storage = storage
        self.conn = None
        self.channels: dict[str, str] = {}  # NOTIFY channel -> event channel

    def open(self) -> None:
        if not is_psycopg3:
            raise RuntimeError("events on PostgreSQL need psycopg 3 (LISTEN)")
        self.conn = listen_connection(self.storage.listen_alias() or self.storage.alias)
        for key in self.channels:
            self.conn.execute(f'LISTEN "{key}"')

    def listen(self, channel: str) -> int | None:
        key = notify_channel(channel)
        if key not in self.channels:
            self.conn.execute(f'LISTEN "{key}"')
            self.channels[key] = channel
        return None

    def unlisten(self, channel: str) -> None:
        key = notify_channel(channel)
        if self.channels.pop(key, None) is not None and self.conn is not None:
            self.conn.execute(f'UNLISTEN "{key}"')

    def read(self, timeout: float, wake_fd: int) -> list[RawEvent]:
        # Notifications that arrived during a LISTEN are already read off the socket.
        events = self._received()
        if events:
            return events
        readable, _, _ = select.select([wake_fd, self.conn.fileno()], [], [], max(0.0, timeout))
        return self._received() if self.conn.fileno() in readable else []

    def _received(self) -> list[RawEvent]:
        return [
            RawEvent(self.channels[n.channel], n.payload)
            for n in self.conn.notifies(timeout=0)
            if n.channel in self.channels
        ]

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
        self.conn = None
