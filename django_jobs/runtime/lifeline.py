"""Recover jobs whose worker died: stale heartbeats first, MAX_RUNTIME as the last resort.

A recovered job counts as an errored attempt (its attempt was spent by the claim): it is
retried with back-off, or failed when its attempts are spent. Every write is guarded by
the dead worker's identity, so two lifelines racing recover a job once, and a worker that
was only presumed dead cannot overwrite the row later.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import Q

from .. import clock
from ..conf import WorkerGroup, jobs_settings
from ..executor import errored
from ..models import Job, Worker
from ..storage import ClaimedJob, get_storage

logger = logging.getLogger("django_jobs.lifeline")

BATCH = 200


def recover(group: WorkerGroup) -> int:
    """One lifeline pass from a live worker of ``group``; returns jobs recovered."""
    settings = jobs_settings()
    alias = settings.database
    now = clock.now()
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout)
    live = Worker.objects.using(alias).filter(heartbeat_at__gte=cutoff).values("identity")
    dead_owner = Q(locked_at__lt=cutoff) & ~Q(locked_by__in=live)
    # The seed's rule, kept as the last resort: locked for longer than MAX_RUNTIME.
    overdue = Q(locked_at__lt=now - timedelta(seconds=group.max_runtime))
    if group.queues is not None:
        overdue &= Q(queue__in=group.queues)
    rows = list(
        Job.objects.using(alias)
        .filter(locked_at__isnull=False)
        .filter(dead_owner | overdue)
        .order_by("locked_at")[:BATCH]
    )
    recovered = 0
    for row in rows:
        if row.locked_at < cutoff and not _is_live(alias, row.locked_by, cutoff):
            reason = f"worker {row.locked_by} died while running this job"
        else:
            reason = (
                f"JobTimeout: locked by {row.locked_by} for longer than MAX_RUNTIME "
                f"({group.max_runtime:g} s); presumed stuck"
            )
        recovered += _recover_row(row, reason)
    Worker.objects.using(alias).filter(heartbeat_at__lt=cutoff).delete()
    return recovered


def _is_live(alias: str, identity: str | None, cutoff) -> bool:
    return Worker.objects.using(alias).filter(identity=identity, heartbeat_at__gte=cutoff).exists()


def recover_worker_jobs(identity: str, reason: str) -> int:
    """Recover every job still locked by ``identity`` (a worker known to be gone)."""
    # locked_at IS NOT NULL lets the partial locked-rows index serve this at every worker
    # start; locked_by alone has no index and would scan the whole table.
    rows = Job.objects.using(jobs_settings().database).filter(
        locked_at__isnull=False, locked_by=identity
    )
    return sum(_recover_row(row, reason) for row in rows)


def _recover_row(row: Job, reason: str) -> int:
    settings = jobs_settings()
    group = settings.group_for_queue(row.queue) or settings.workers[0]
    claimed = ClaimedJob(
        row.pk, row.name, row.args, row.kwargs, row.queue, row.priority, row.attempts,
        row.run_at,
    )  # fmt: skip
    outcome = errored(claimed, reason, group)
    changed = get_storage().record(
        row.locked_by or "",
        [outcome],
        clock.now(),
        keep_succeeded=not group.delete_successful_jobs,
        delete_failed=group.delete_failed_jobs,
    )
    if changed:
        logger.warning("[jobs] [%s] job %s recovered: %s", row.name, row.pk, reason)
    return changed
