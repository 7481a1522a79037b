"""Pruning: deleting old succeeded and failed jobs, dead worker rows, schedule history and
published events.

Each batch is one short statement pair: a ``SELECT`` of at most ``PRUNE["BATCH_SIZE"]``
ids through an index, then ``DELETE … WHERE id IN (…)`` repeating the condition. Nothing is
held between batches, so pruning ten million rows never blocks a claim for longer than
one batch's delete of rows no claim reads anyway. The ids are fetched first (rather than
``DELETE … LIMIT`` or ``IN (SELECT … LIMIT)``) because MySQL/MariaDB refuse a ``LIMIT``
inside an ``IN`` subquery and PostgreSQL has no ``DELETE … LIMIT``.

The condition is repeated in the ``DELETE`` because a row may change between the two
statements: a failed job retried from the admin in that moment is ready again, and must
stay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import models
from django.db.models import Exists, OuterRef

from . import clock
from .conf import jobs_settings
from .models import Batch, Event, Job, JobLink, LimitLock, ScheduleRun, Worker
from .registry import TASK_PREFIX

#: The kinds of rows pruning deletes, in the order they are pruned and reported.
KINDS = ("succeeded", "failed", "workers", "history", "results", "events", "flows")

LABELS = {
    "succeeded": "succeeded jobs",
    "failed": "failed jobs",
    "results": "finished task results",
    "workers": "dead worker rows",
    "history": "schedule runs",
    "events": "published events",
    "flows": "chain and batch records",
}


@dataclass
class PruneReport:
    """What one :func:`prune` deleted (or, with ``dry_run``, would delete)."""

    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    #: DELETE statements run (0 in a dry run).
    batches: int = 0
    #: The longest batch (its SELECT and DELETE) in seconds: how long pruning held locks.
    longest_batch: float = 0.0
    seconds: float = 0.0

    @property
    def succeeded(self) -> int:
        return self.counts["succeeded"]

    @property
    def failed(self) -> int:
        return self.counts["failed"]

    @property
    def results(self) -> int:
        return self.counts["results"]

    @property
    def workers(self) -> int:
        return self.counts["workers"]

    @property
    def history(self) -> int:
        return self.counts["history"]

    @property
    def events(self) -> int:
        return self.counts["events"]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        verb = "Would delete" if self.dry_run else "Deleted"
        lines = [f"{verb} {self.counts[kind]:,} {LABELS[kind]}" for kind in KINDS]
        if not self.dry_run:
            lines.append(
                f"in {self.batches:,} batches, {self.seconds:.2f} s "
                f"(longest batch {self.longest_batch * 1000:.0f} ms)"
            )
        return "\n".join(lines) + "\n"


def prune(*, dry_run: bool = False, now: datetime | None = None) -> PruneReport:
    """Delete what ``JOBS["PRUNE"]`` says is old enough; with ``dry_run``, only count it.

    Never touches scheduled, ready or running jobs. Call it outside a transaction: inside
    one, every batch would be part of it and the locks would be held to its end.
    """
    settings = jobs_settings()
    now = now or clock.now()
    report = PruneReport(dry_run=dry_run)
    started = time.monotonic()
    for alias in settings.databases:  # queues in databases of their own are pruned there
        _prune_in(alias, settings, now, dry_run, report)
    report.seconds = time.monotonic() - started
    return report


def _prune_in(alias: str, settings, now: datetime, dry_run: bool, report: PruneReport) -> None:
    prune_settings = settings.prune
    tasks: list[tuple[str, models.QuerySet, str]] = []
    # django.tasks rows keep their results for TASK_RESULTS_TTL instead (the "results").
    jobs = (
        Job.objects.using(alias)
        .filter(locked_at__isnull=True)
        .exclude(name__startswith=TASK_PREFIX)
    )
    task_rows = Job.objects.using(alias).filter(
        locked_at__isnull=True, name__startswith=TASK_PREFIX
    )
    if prune_settings.succeeded_after is not None:
        cutoff = now - prune_settings.succeeded_after
        # finished_at first in the filter and the order: the finish index is partial on
        # finished_at IS NOT NULL (PostgreSQL, SQLite) or on finished_at alone (MySQL).
        tasks.append(
            (
                "succeeded",
                jobs.filter(finished_at__isnull=False, finished_at__lt=cutoff),
                "finished_at",
            )
        )
    if prune_settings.failed_after is not None:
        cutoff = now - prune_settings.failed_after
        tasks.append(
            ("failed", jobs.filter(failed_at__isnull=False, failed_at__lt=cutoff), "failed_at")
        )
    if settings.task_results_ttl is not None:
        cutoff = now - settings.task_results_ttl
        for column in ("finished_at", "failed_at"):
            old = task_rows.filter(**{f"{column}__isnull": False, f"{column}__lt": cutoff})
            tasks.append(("results", old, column))
    tasks.append(
        (
            "workers",
            Worker.objects.using(alias).filter(heartbeat_at__lt=now - settings.worker_rows_max_age),
            "heartbeat_at",
        )
    )
    history = _history(alias, now, prune_settings.history_after)
    if history is not None:
        tasks.append(("history", history, "enqueued_at"))
    if settings.events.retention is not None:
        # Rows of the events table (SQLite, MySQL/MariaDB): subscribers read them within
        # a poll interval of their publishing, so an hour is plenty.
        old_events = Event.objects.using(alias).filter(
            created_at__lt=now - settings.events.retention
        )
        tasks.append(("events", old_events, "created_at"))
    for kind, queryset, order in tasks:
        if dry_run:
            report.counts[kind] += queryset.count()
        else:
            report.counts[kind] += _delete_in_batches(
                queryset, order, prune_settings.batch_size, alias, report
            )
    if not dry_run:
        # Housekeeping, not reported: the lock rows of concurrency keys unused for as long
        # as a dead worker's row is kept (a claim creates a key's row again when needed).
        LimitLock.objects.using(alias).filter(
            used_at__lt=now - settings.worker_rows_max_age
        ).delete()
    # Chain and batch records go with the jobs they belong to, after them: an edge once
    # the job that waited is gone, a batch once its callbacks are (ids are never reused).
    for queryset in _flow_records(alias):
        if dry_run:
            report.counts["flows"] += queryset.count()
        else:
            report.counts["flows"] += _delete_in_batches(
                queryset, "id", prune_settings.batch_size, alias, report
            )


def _flow_records(alias: str) -> list[models.QuerySet]:
    jobs = Job.objects.using(alias)
    links = JobLink.objects.using(alias).filter(~Exists(jobs.filter(pk=OuterRef("job_id"))))
    batches = (
        Batch.objects.using(alias)
        .filter(closed_at__isnull=False)
        .filter(~Exists(jobs.filter(pk=OuterRef("on_success_id"))))
        .filter(~Exists(jobs.filter(pk=OuterRef("on_finish_id"))))
    )
    return [links, batches]


def _history(alias: str, now: datetime, age: timedelta | None) -> models.QuerySet | None:
    """Schedule runs older than ``age``, except each schedule's latest (``jobs schedule``
    shows it as the last run); None when HISTORY_AFTER keeps them all."""
    if age is None:
        return None
    runs = ScheduleRun.objects.using(alias)
    # Each key's latest run as last_run() reads it (latest enqueued_at, then id): one
    # query per key, and there are as many keys as schedules.
    keys = runs.order_by().values_list("key", flat=True).distinct()
    latest = [
        runs.filter(key=key).order_by("-enqueued_at", "-id").values_list("id", flat=True)[0]
        for key in list(keys)
    ]
    return runs.filter(enqueued_at__lt=now - age).exclude(id__in=latest)


def _delete_in_batches(
    queryset: models.QuerySet, order: str, size: int, alias: str, report: PruneReport
) -> int:
    deleted = 0
    lower: object = None
    while True:
        began = time.monotonic()
        batch = queryset if lower is None else queryset.filter(**{f"{order}__gte": lower})
        # The last batch's highest value as a lower bound, so each SELECT starts where
        # the previous one ended instead of walking the index entries it just deleted
        # (PostgreSQL keeps them until VACUUM).
        # In index order alone: a tie-break on id would make the database sort every row
        # of a run of equal times (a bulk update finishes thousands in one instant).
        rows = list(batch.order_by(order).values_list("pk", order)[:size])
        if not rows:
            break
        ids = [pk for pk, _ in rows]
        lower = rows[-1][1]
        # _raw_delete: exactly one DELETE, without the collector's SELECTs and signals
        # (queryset.delete() would first read every row it deletes).
        count = queryset.filter(pk__in=ids)._raw_delete(alias)
        deleted += count
        report.batches += 1
        report.longest_batch = max(report.longest_batch, time.monotonic() - began)
        if len(rows) < size:
            break
    return deleted
