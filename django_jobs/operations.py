"""Operations on stored jobs that the admin and the commands share."""

from __future__ import annotations

from . import clock
from .conf import jobs_settings
from .models import Batch, Job, JobLink, RateGrant
from .storage import get_storage


def clear_jobs() -> int:
    """Delete every job, with the chain and batch records that name them and the grants
    of rate limits; returns how many jobs."""
    alias = jobs_settings().database
    deleted, _ = Job.objects.using(alias).all().delete()
    JobLink.objects.using(alias).all().delete()
    Batch.objects.using(alias).all().delete()
    RateGrant.objects.using(alias).all().delete()
    return deleted


def retry_jobs(queryset) -> int:
    """Failed and cancelled jobs become scheduled now: attempts reset, failure, cancellation
    and error cleared."""
    now = clock.now()
    failed = queryset.filter(failed_at__isnull=False)
    queues = _queues_of(failed)
    changed = failed.update(
        failed_at=None, cancelled_at=None, last_error="", attempts=0, run_at=now,
        updated_at=now, progress=None, progress_message="",
    )  # fmt: skip
    _wake(queryset.db, queues, changed)
    return changed


def run_now(queryset) -> int:
    """Scheduled (not running, not finished) jobs become due now."""
    now = clock.now()
    # Jobs that wait for other jobs (chains, batch callbacks) become due when those end.
    scheduled = queryset.scheduled().exclude(run_at__isnull=True, waiting_for__gt=0)
    queues = _queues_of(scheduled)
    changed = scheduled.update(run_at=now, updated_at=now)
    _wake(queryset.db, queues, changed)
    return changed


def _queues_of(queryset) -> list[str]:
    return list(queryset.order_by().values_list("queue", flat=True).distinct())


def _wake(alias: str, queues: list[str], changed: int) -> None:
    """Idle workers start the jobs now, not at their next poll (PostgreSQL: NOTIFY)."""
    if changed:
        get_storage(alias).wake_workers(queues)


def cancel_jobs(queryset, by: str = "") -> int:
    """Cancel the jobs that have not ended (see :func:`django_jobs.cancel`); how many
    were cancelled or told to stop."""
    from .cancelling import cancel
    from .exceptions import JobNotFound

    changed = 0
    for job_id in queryset.cancellable().order_by("id").values_list("id", flat=True):
        try:
            changed += cancel(job_id, by=by, using=queryset.db).changed
        except JobNotFound:  # deleted meanwhile (it succeeded)
            continue
    return changed


def discard(queryset) -> int:
    """Delete jobs that are not running."""
    deleted, _ = queryset.filter(locked_at__isnull=True).delete()
    return deleted
