"""The one clock of django_jobs: UTC, whatever ``USE_TZ`` says.

Liveness (heartbeats, claim deadlines) compares times written by different processes and
hosts. Local time would make every heartbeat look an hour stale at a DST jump, so every
timestamp django_jobs writes is UTC: aware with ``USE_TZ = True``, naive UTC with
``USE_TZ = False`` (check ``django_jobs.W060`` says so, since the admin then shows UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone


def now() -> datetime:
    """The current time as django_jobs stores it."""
    if settings.USE_TZ:
        return datetime.now(UTC)
    return datetime.now(UTC).replace(tzinfo=None)


def at(value: datetime | float | None) -> datetime | None:
    """A ``time.time()`` float (what workers note per job: cheaper than a datetime, and
    most never need one) as django_jobs stores times; datetimes and None pass through."""
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromtimestamp(value, UTC)
    return moment if settings.USE_TZ else moment.replace(tzinfo=None)


def stored(value: datetime) -> datetime:
    """``value`` (a caller's datetime) as django_jobs stores it.

    With ``USE_TZ = False`` a naive datetime is the project's local time (TIME_ZONE), as
    Django reads it everywhere else; it is turned into naive UTC.
    """
    if settings.USE_TZ:
        return value
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value.astimezone(UTC).replace(tzinfo=None)
