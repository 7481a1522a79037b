"""Concurrency limits in the storage: the claim that takes a slot of each picked row's
limit, and the freeing of slots when claims end.

The claimed rows themselves are the slots: a key's slots in use are its rows with
``locked_at`` set, counted under the key's ``LimitLock`` row, so no counter can drift when a
worker is killed. A row that finds its key full is parked (``run_at`` NULL, see
``BLOCKED``): out of every claim, no attempt spent, until a claim of its key ends in a
transaction that un-parks the next waiting rows (``_free_slots``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from .. import clock
from ..models import LimitLock
from .rates import RateDecisions
from .rows import CLAIM_COLUMNS, ClaimedJob, chunks, new_token

#: How stale a LimitLock row's used_at may get before a lock writes it again.
USED_AT_REFRESH = timedelta(minutes=10)

#: A row waiting for a slot of its concurrency limit (with a key: see claim_limited).
BLOCKED = "run_at IS NULL AND locked_at IS NULL AND failed_at IS NULL AND finished_at IS NULL"
#: A row without ``run_at`` that waits for other jobs (``after=``, a batch callback) is
#: not parked by its concurrency limit: only the end of its prerequisites makes it due.
NOT_CHAINED = " AND (waiting_for IS NULL OR waiting_for = 0)"


def limits_of(jobs: Iterable[ClaimedJob]) -> dict[str, int]:
    """Each concurrency key among ``jobs`` and its limit."""
    return {
        job.concurrency_key: job.concurrency_limit or 1
        for job in jobs
        if job.concurrency_key is not None
    }


class ConcurrencyLimits:
    """The part of :class:`~django_jobs.storage.base.Storage` that enforces ``@job(concurrency=)``
    and a group's ``CONCURRENCY``; vendors override ``_lock_limit_rows`` and
    ``_keys_with_waiting_sql`` where their SQL differs."""

    #: True once this process met a job with a concurrency limit (or declares one):
    #: from then on every claim counts slots (``claim_limited``).
    limited = False

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
        size = limit
        with self.write_transaction(), self.connection.cursor() as cursor:
            # Parked and waiting rows leave the ready set at once: pick again (in this
            # transaction, which sees its own writes) so that the jobs behind them are
            # claimed now. Later rounds pick more rows than are wanted, so that a backlog
            # of rows waiting for their rate limit is scheduled in a few statements.
            while len(claimed) < limit and picked < self.PARK_PER_CLAIM:
                wanted = limit - len(claimed)
                jobs = self._claim_round(
                    cursor, worker, queues, size, wanted, now, at, token, exclude
                )
                picked += len(jobs)
                claimed += [job for job in jobs if job.token == token]
                if len(jobs) < size:
                    break  # nothing more is ready
                size = max(limit - len(claimed), self.PICK_AFTER_WAITING)
        for job in claimed:
            job.attempts += 1
        claimed.sort(key=ClaimedJob.sort_key)
        return claimed

    #: Rows one claim may pick and park before it returns what it has.
    PARK_PER_CLAIM = 2000
    #: Rows a claim picks per round once a round made rows wait.
    PICK_AFTER_WAITING = 100

    def _claim_round(
        self, cursor, worker, queues, limit, room, now, at, token, exclude
    ) -> list[ClaimedJob]:
        """Pick up to ``limit`` ready rows; claim up to ``room`` of those that may start
        (token ``token``), park those without a slot and make those beyond their rate
        wait (token 0); rows that may start beyond ``room`` are left as they are (token
        0, still ready). Returns every picked row."""
        pick, params = self.ready_select(queues, limit, now, ", ".join(CLAIM_COLUMNS), exclude)
        cursor.execute(pick, params)
        jobs = [ClaimedJob.from_row(row, token) for row in cursor.fetchall()]
        jobs.sort(key=ClaimedJob.sort_key)
        limits = limits_of(jobs)
        rate_locks = self.rate_lock_keys(jobs) if self.paced else set()
        rates = RateDecisions()
        running: dict[str, int] = {}
        windows: dict = {}
        reserved: dict = {}
        granted = now
        if limits or rate_locks:
            running = self._lock_keys(cursor, sorted(limits), now, also=rate_locks)
            if rate_locks:
                # Grants are stamped with the time the keys' locks were got, not the time
                # the claim began: it may have waited for another claim's grants.
                granted = max(now, clock.now())
                windows, reserved = self.rate_windows(jobs, granted)
        taken = 0
        left: set[int] = set()
        for job in jobs:  # in claim order: the first rows get the slots and grants
            key = job.concurrency_key
            has_slot = key is None or running.get(key, 0) < (job.concurrency_limit or 1)
            if job.rate_key is not None and rate_locks:
                starts = self.rate_decide(
                    job, windows, reserved, rates, granted, has_slot, taken < room
                )
            else:
                starts = has_slot and taken < room
            if starts:
                taken += 1
                if key is not None:
                    running[key] = running.get(key, 0) + 1
                continue
            job.token = 0
            if taken >= room and job.id not in rates.deferred:
                left.add(job.id)
        for chunk in chunks([job.id for job in jobs if job.token], 500):
            cursor.execute(
                f"UPDATE {self.table} SET {self.CLAIM_SET}, attempts = attempts + 1"
                f" WHERE id IN ({', '.join(['%s'] * len(chunk))})",
                [at, worker, token, at, *chunk],
            )
        parked = [
            job.id
            for job in jobs
            if not job.token and job.id not in rates.deferred and job.id not in left
        ]
        for chunk in chunks(parked, 500):
            cursor.execute(
                f"UPDATE {self.table} SET run_at = NULL, updated_at = %s"
                f" WHERE id IN ({', '.join(['%s'] * len(chunk))})",
                [at, *chunk],
            )
        if rate_locks:
            self.rate_write(cursor, rates, granted)
            self.prune_grants(windows, granted)
        return jobs

    def _lock_keys(
        self, cursor: Any, keys: list[str], now: datetime, also: Iterable[str] = ()
    ) -> dict[str, int]:
        """Lock the ``LimitLock`` rows of ``keys`` and ``also`` (rate keys; creating
        them), in key order so that two transactions never wait for each other; then
        count each of ``keys``' claimed rows.

        The count is a statement of its own after the locks: under READ COMMITTED it
        sees every transaction that held a lock before us as committed."""
        self._lock_limit_rows(cursor, sorted({*keys, *also}), now)
        if not keys:
            return {}
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
        for chunk in chunks([i for i, _ in chosen], 500):
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
