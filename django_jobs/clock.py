"""The one clock of django_jobs: UTC, whatever ``USE_TZ`` says.

Liveness (heartbeats, claim deadlines) compares times written by different processes and
hosts. Local time would make every heartbeat look an hour stale at a DST jump, so every
timestamp django_jobs writes is UTC: aware with ``USE_TZ = True``, naive UTC with
``USE_TZ = False`` (check ``django_jobs.W060`` says so, since the admin then shows UTC).

Hosts' clocks disagree, too. Workers and supervisors follow the database's clock: each
heartbeat measures how far this host's clock is from the database's (``follow_database``)
and ``now()`` corrects by that much, so the claim, start and deadline times a worker writes
are on the database's clock; heartbeats and the liveness comparisons of recovery read the
database's clock itself (``Storage.database_now``). Other processes (web, shell) keep
their own clock, which only decides when scheduled jobs become due.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings
from django.utils import timezone

#: Seconds added to this host's clock, for tests only: they play a host whose clock is wrong.
SKEW = float(os.environ.get("DJANGO_JOBS_CLOCK_SKEW") or 0)
#: The database's clock minus this host's, as the last ``follow_database`` measured it.
_offset = 0.0
#: Differences smaller than this are not corrected (far below any heartbeat timeout).
TOLERANCE = 0.5


def now() -> datetime:
    """The current time as django_jobs stores it."""
    shift = SKEW + _offset
    moment = datetime.fromtimestamp(time.time() + shift, UTC) if shift else datetime.now(UTC)
    return moment if settings.USE_TZ else moment.replace(tzinfo=None)


def at(value: datetime | float | None) -> datetime | None:
    """A ``time.time()`` float (what workers note per job: cheaper than a datetime, and
    most never need one) as django_jobs stores times; datetimes and None pass through."""
    if value is None or isinstance(value, datetime):
        return value
    return _stored(datetime.fromtimestamp(value + SKEW + _offset, UTC))


def _stored(moment: datetime) -> datetime:
    return moment if settings.USE_TZ else moment.replace(tzinfo=None)


def from_database(value: datetime | str) -> datetime:
    """The database's UTC time (a naive datetime, or SQLite's text) as django_jobs stores it."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _stored(value.replace(tzinfo=UTC))


def follow_database(read: Callable[[], datetime]) -> datetime:
    """Read the database's time with ``read`` and follow its clock from now on; its time."""
    global _offset
    before = time.time()
    database = read()
    after = time.time()
    seconds = (database if database.tzinfo else database.replace(tzinfo=UTC)).timestamp()
    # Half the round trip is the best guess of when the database read its clock.
    offset = seconds - (before + after) / 2 - SKEW
    # Clocks kept by NTP agree within milliseconds: following the noise of round trips
    # would only make this process's times jitter.
    _offset = offset if abs(offset) >= TOLERANCE else 0.0
    return database


def offset() -> float:
    """Seconds this process adds to its host's clock to follow the database's."""
    return _offset


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
