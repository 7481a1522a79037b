"""Operations on stored jobs that the admin and the commands share."""

from __future__ import annotations

from django.utils import timezone

from .conf import jobs_settings
from .models import Job


def clear_jobs() -> int:
    """Delete every job; returns how many."""
    deleted, _ = Job.objects.using(jobs_settings().database).all().delete()
    return deleted


def retry_jobs(queryset) -> int:
    """Failed jobs become scheduled now: attempts reset, failure and error cleared."""
    now = timezone.now()
    return queryset.filter(failed_at__isnull=False).update(
        failed_at=None, last_error="", attempts=0, run_at=now, updated_at=now,
        progress=None, progress_message="",
    )  # fmt: skip


def run_now(queryset) -> int:
    """Scheduled (not running, not finished) jobs become due now."""
    now = timezone.now()
    return queryset.scheduled().update(run_at=now, updated_at=now)


def discard(queryset) -> int:
    """Delete jobs that are not running."""
    deleted, _ = queryset.filter(locked_at__isnull=True).delete()
    return deleted
