"""Writing what became of claimed jobs: outcomes (``record``), starts (``mark_started``),
give-backs (``release``) and progress, each guarded by the claim token, with the
follow-on writes of chains, batches, concurrency slots and outcome events in the same
transaction. The contracts are in :mod:`django_jobs.storage.base`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime
from typing import Any

from django.db import transaction

from .. import clock
from ..conf import jobs_settings
from ..models import Job
from . import flows
from .flows import CANCELLED as FLOW_CANCELLED
from .flows import FAILED as FLOW_FAILED
from .flows import SUCCEEDED as FLOW_SUCCEEDED
from .flows import reason_of
from .limits import limits_of
from .rows import (
    OUTCOME_CANCELLED,
    OUTCOME_FAILED,
    OUTCOME_RETRY,
    OUTCOME_SNOOZE,
    OUTCOME_SUCCEEDED,
    ClaimedJob,
    Outcome,
    StartMark,
    chunks,
)


#: Says whether a job called ``name`` publishes its outcomes (``@job(events=True)``). Set
#: by the app's ``ready()``: the registry sits above the storage.
def _no_outcome_events(name: str) -> bool:
    return False


_publishes_outcomes: Callable[[str], bool] = _no_outcome_events


def use_outcome_events(predicate: Callable[[str], bool]) -> None:
    global _publishes_outcomes
    _publishes_outcomes = predicate


def publishes_outcomes(name: str) -> bool:
    """Whether a job called ``name`` publishes its outcomes (read at each call: the app's
    ``ready()`` sets the predicate after this module is imported)."""
    return _publishes_outcomes(name)


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

#: Appended to the outcome statements' guard: rows with follow-ups take the other path.
FOLLOW_UP_GUARD = " AND follow_up IS NULL"
#: ``release`` ends a row only when its cancellation was asked for.
RELEASE_GUARD = " AND (follow_up IS NULL OR cancelled_at IS NULL)"


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
        for chunk in chunks(ids, 500):
            yield token, chunk


#: Outcomes a row whose cancellation was asked for keeps as they are.
_PLAIN_ENDS = frozenset({OUTCOME_SUCCEEDED, OUTCOME_CANCELLED})


class OutcomeWriting:
    """The part of :class:`~django_jobs.storage.base.Storage` that ends or gives back claims;
    vendors override the statements their SQL writes differently (``concat``,
    ``_with_result``, ...)."""

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
        with self._ending(limits_of(outcome.job for outcome in outcomes)):
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
        for chunk in chunks([outcome.job.id for outcome in outcomes], 500):
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
        removals = self._deletes(deletes, skip)
        statements = [(sql, params) for sql, params, _ in first]
        statements += [(sql, params) for sql, params, _ in removals]
        statements += self._statements([], updates, skip)
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
                for _, _, ids in removals:
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
        for chunk in chunks(ids, 500):
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
        statements = [(sql, params) for sql, params, _ in self._deletes(deletes, guard)]
        for assignments, params, _ in updates:
            statements.append(
                (
                    f"UPDATE {self.table} SET {assignments}"
                    f" WHERE id = %s AND claim_token = %s{guard}",
                    params,
                )
            )
        return statements

    def ids_among(self, ids: list[int]) -> tuple[str, list[Any]]:
        """SQL that holds for a row whose ``id`` is one of ``ids``, and its parameters."""
        return f"id IN ({', '.join(['%s'] * len(ids))})", list(ids)

    def _deletes(
        self, deletes: list[Outcome], guard: str = ""
    ) -> list[tuple[str, list[Any], list[int]]]:
        """(sql, parameters, job ids) of each DELETE that records ``deletes``, each
        guarded by the claim token of its rows: one per claim, 500 ids at most."""
        statements = []
        for token, chunk in _delete_chunks(deletes):
            among, ids = self.ids_among(chunk)
            statements.append(
                (
                    f"DELETE FROM {self.table} WHERE {among} AND claim_token = %s{guard}",
                    [*ids, token],
                    chunk,
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
        with self._ending(limits_of(jobs)):
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
