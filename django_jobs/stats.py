"""Queue statistics and live workers, shared by the admin dashboard and ``jobs status``.

Every count comes from a handful of grouped queries that the job table's indexes serve
(the claim index for scheduled rows, the lock index for running ones, the failed_at and
finished_at indexes for the rest), so the numbers stay cheap on tables with millions of
rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from . import clock
from .conf import jobs_settings
from .models import CLAIMABLE, Job, QueuePause, RateGrant, Worker


@dataclass(frozen=True)
class QueueStats:
    """What one queue holds right now."""

    queue: str
    ready: int = 0
    later: int = 0
    running: int = 0
    failed: int = 0
    #: Jobs finished in the last hour; None when the worker group serving this queue
    #: deletes successful jobs, so there is nothing to count.
    succeeded_last_hour: int | None = None
    #: How long the oldest ready job has been waiting (now - its run_at), or None.
    oldest_ready_age: timedelta | None = None
    #: False for a queue that has rows but is not in ``JOBS["QUEUES"]``.
    configured: bool = True
    cancelled: int = 0
    #: The queue's pause (who, when, why) while it is paused, else None.
    pause: QueuePause | None = None

    @property
    def paused(self) -> bool:
        return self.pause is not None

    @property
    def succeeded_kept(self) -> bool:
        return self.succeeded_last_hour is not None


@dataclass(frozen=True)
class RunningJob:
    id: int
    name: str
    queue: str
    locked_at: datetime
    running_for: timedelta


@dataclass(frozen=True)
class LiveWorker:
    """A worker process whose heartbeat is fresh, with the jobs it holds."""

    identity: str
    host: str
    pid: int
    group: int
    queues: str
    started_at: datetime
    heartbeat_at: datetime
    jobs_done: int
    jobs: list[RunningJob] = field(default_factory=list)


def _alias(alias: str | None) -> str:
    return alias or jobs_settings().database


def _keeps_succeeded(queue: str) -> bool:
    group = jobs_settings().group_for_queue(queue)
    return group is not None and not group.delete_successful_jobs


def _by_queue(rows: Iterable[dict], key: str) -> dict[str, int]:
    return {row["queue"]: row[key] for row in rows}


def queue_stats(alias: str | None = None, now: datetime | None = None) -> list[QueueStats]:
    """Per queue: ready now, scheduled later, running, failed, succeeded in the last hour
    and the age of the oldest ready job.

    Queues are those of ``JOBS["QUEUES"]`` in their order, then any other queue that has
    rows (a job enqueued to a queue no worker serves is something to notice).
    """
    alias = _alias(alias)
    now = now or clock.now()
    jobs = Job.objects.using(alias).order_by()
    scheduled = (
        jobs.filter(CLAIMABLE, run_at__isnull=False)
        .values("queue")
        .annotate(
            ready=Count("id", filter=Q(run_at__lte=now)),
            later=Count("id", filter=Q(run_at__gt=now)),
            oldest=Min("run_at", filter=Q(run_at__lte=now)),
        )
    )
    ready, later, oldest = {}, {}, {}
    for row in scheduled:
        ready[row["queue"]] = row["ready"]
        later[row["queue"]] = row["later"]
        oldest[row["queue"]] = row["oldest"]
    running = _by_queue(jobs.running().values("queue").annotate(n=Count("id")), "n")
    failed = _by_queue(jobs.failed().values("queue").annotate(n=Count("id")), "n")
    cancelled = _by_queue(jobs.cancelled().values("queue").annotate(n=Count("id")), "n")
    pauses = {row.queue: row for row in QueuePause.objects.using(alias)}
    succeeded = _by_queue(
        jobs.filter(finished_at__gte=now - timedelta(hours=1))
        .values("queue")
        .annotate(n=Count("id")),
        "n",
    )
    configured = list(jobs_settings().queues)
    seen = set(ready) | set(later) | set(running) | set(failed) | set(succeeded) | set(cancelled)
    queues = configured + sorted(seen - set(configured))
    result = []
    for queue in queues:
        kept = _keeps_succeeded(queue) or queue in succeeded
        result.append(
            QueueStats(
                queue=queue,
                ready=ready.get(queue, 0),
                later=later.get(queue, 0),
                running=running.get(queue, 0),
                failed=failed.get(queue, 0),
                succeeded_last_hour=succeeded.get(queue, 0) if kept else None,
                oldest_ready_age=(now - oldest[queue]) if oldest.get(queue) else None,
                configured=queue in configured,
                cancelled=cancelled.get(queue, 0),
                pause=pauses.get(queue),
            )
        )
    return result


def placed_queue_stats(now: datetime | None = None) -> list[tuple[str, QueueStats]]:
    """(alias, stats) of each queue, read in the database that holds it, then of any
    queue with rows in another jobs database: what ``status`` and the dashboard show."""
    settings = jobs_settings()
    now = now or clock.now()
    placed = []
    for alias in settings.databases:
        for stats in queue_stats(alias, now=now):
            elsewhere = stats.configured and settings.database_for(stats.queue) != alias
            if elsewhere and not (stats.ready or stats.later or stats.running or stats.failed):
                continue
            placed.append((alias, stats))
    return placed


def live_workers(alias: str | None = None, now: datetime | None = None) -> list[LiveWorker]:
    """Workers with a fresh heartbeat, each with the jobs it has locked right now."""
    alias = _alias(alias)
    now = now or clock.now()
    cutoff = now - timedelta(seconds=jobs_settings().heartbeat_timeout)
    rows = list(Worker.objects.using(alias).filter(heartbeat_at__gte=cutoff))
    if not rows:
        return []
    held: dict[str, list[RunningJob]] = {}
    locked = (
        Job.objects.using(alias)
        .filter(locked_by__in=[w.identity for w in rows], locked_at__isnull=False)
        .order_by("locked_at", "id")
        .values_list("id", "name", "queue", "locked_at", "locked_by")
    )
    for job_id, name, queue, locked_at, locked_by in locked:
        held.setdefault(locked_by, []).append(
            RunningJob(job_id, name, queue, locked_at, max(now - locked_at, timedelta(0)))
        )
    return [
        LiveWorker(
            identity=w.identity,
            host=w.host,
            pid=w.pid,
            group=w.group,
            queues=w.queues,
            started_at=w.started_at,
            heartbeat_at=w.heartbeat_at,
            jobs_done=w.jobs_done,
            jobs=held.get(w.identity, []),
        )  # fmt: skip
        for w in rows
    ]


@dataclass(frozen=True)
class HourlyOutcomes:
    """Succeeded and failed counts per hour, oldest hour first."""

    starts: list[datetime]
    succeeded: list[int]
    failed: list[int]


def _hourly(queryset, column: str, starts: list[datetime], end: datetime) -> list[int]:
    bounds = [*starts[1:], end]
    aggregates = {
        f"h{i}": Count("id", filter=Q(**{f"{column}__gte": lo, f"{column}__lt": hi}))
        for i, (lo, hi) in enumerate(zip(starts, bounds, strict=True))
    }
    counts = queryset.filter(**{f"{column}__gte": starts[0]}).aggregate(**aggregates)
    return [counts[f"h{i}"] or 0 for i in range(len(starts))]


def hourly_outcomes(
    hours: int = 24, alias: str | None = None, now: datetime | None = None
) -> HourlyOutcomes:
    """Jobs that succeeded (``finished_at``, kept rows only) and failed (``failed_at``) in
    each of the last ``hours`` hours, aligned on local hour boundaries, current hour last
    (UTC hours with ``USE_TZ = False``, where stored times are naive UTC).
    """
    alias = _alias(alias)
    now = now or clock.now()
    local = timezone.localtime(now) if timezone.is_aware(now) else now
    local = local.replace(minute=0, second=0, microsecond=0)
    starts = [local - timedelta(hours=hours - 1 - i) for i in range(hours)]
    end = now + timedelta(seconds=1)
    jobs = Job.objects.using(alias).order_by()
    return HourlyOutcomes(
        starts=starts,
        succeeded=_hourly(jobs, "finished_at", starts, end),
        failed=_hourly(jobs.filter(cancelled_at__isnull=True), "failed_at", starts, end),
    )


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::|$)")


def error_type(last_error: str) -> str:
    """The exception class named on the last line of a traceback, or ``""``.

    ``"ValueError: boom"`` gives ``ValueError``; a line that does not start with a
    class name (such as a lifeline message) gives ``""``.
    """
    lines = [line for line in last_error.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    match = _EXCEPTION_LINE.match(lines[-1].strip())
    return match.group(1) if match else ""


@dataclass(frozen=True)
class WaitingKey:
    """A concurrency key with jobs waiting for one of its slots."""

    key: str
    limit: int | None
    waiting: int

    @property
    def reason(self) -> str:
        from .limits import describe

        return describe(self.key, self.limit)


def waiting_keys(alias: str | None = None, top: int = 10) -> list[WaitingKey]:
    """The keys with the most jobs waiting for a slot (the waiting rows' index)."""
    rows = (
        Job.objects.using(_alias(alias))
        .blocked()
        .values("concurrency_key")
        .annotate(n=Count("id"), limit=Max("concurrency_limit"))
        .order_by("-n", "concurrency_key")[:top]
    )
    return [WaitingKey(row["concurrency_key"], row["limit"], row["n"]) for row in rows]


@dataclass(frozen=True)
class RateLimitedKey:
    """A rate key with jobs waiting for the moment their rate limit granted them."""

    key: str
    rate: str
    waiting: int
    #: When the last of them may start.
    until: datetime

    @property
    def reason(self) -> str:
        local = timezone.localtime(self.until) if timezone.is_aware(self.until) else self.until
        return (
            f"rate limit {self.rate} for key {self.key}: {self.waiting} job(s) rate limited"
            f" until {local:%H:%M:%S}"
        )


def rate_limited_keys(alias: str | None = None, top: int = 10) -> list[RateLimitedKey]:
    """The keys with the most jobs waiting for their rate limit (their reservations)."""
    alias = _alias(alias)
    rows = (
        RateGrant.objects.using(alias)
        .filter(job_id__isnull=False, at__gt=clock.now())
        .values("key")
        .annotate(n=Count("id"), until=Max("at"), job=Min("job_id"))
        .order_by("-n", "key")[:top]
    )
    rates = dict(
        Job.objects.using(alias)
        .filter(pk__in=[row["job"] for row in rows])
        .values_list("rate_key", "rate_limit")
    )
    return [
        RateLimitedKey(row["key"], rates.get(row["key"]) or "?", row["n"], row["until"])
        for row in rows
    ]
