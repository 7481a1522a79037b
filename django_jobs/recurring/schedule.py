"""Schedules: ``JOBS["SCHEDULE"]``, ``@job(cron=...)`` and built-ins, and their ticks.

A tick is computed on the *wall clock* of the schedule's time zone, as people read a cron
line ("02:30 every day in Paris"), then turned into one UTC instant:

* a wall time that does not exist (the spring-forward gap) runs at the first valid time
  after the gap: 02:30 on the day New York moves from 02:00 EST to 03:00 EDT runs at
  03:00 EDT;
* a wall time that happens twice (the fall-back hour) runs once, at its first occurrence
  (``fold=0``, still on summer time).

So a daily job runs exactly once on each transition day. Several wall times that land on
the same instant (``*/15`` ticks inside a gap) are one tick.

Six fields mean seconds first (``"*/10 * * * * *"``: every ten seconds), croniter's
``second_at_beginning``; five fields are classic cron; ``@hourly``, ``@daily``,
``@midnight``, ``@weekly``, ``@monthly`` and ``@yearly`` are aliases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings

from ..conf import SCHEDULE_DEFAULTS, jobs_settings

#: Where a schedule was declared, as ``jobs schedule`` and the admin show it.
SOURCE_SETTINGS = "settings"
SOURCE_DECORATOR = "@job(cron=...)"
SOURCE_BUILTIN = "built-in"

#: Time-zone offsets change by at most this much at once (real zones: 2 hours at most).
_MAX_SHIFT = timedelta(hours=3)

_builtins: dict[str, Callable[[], Schedule | None]] = {}


@dataclass(frozen=True)
class Schedule:
    """One recurring schedule: which job to enqueue, with what, and when."""

    key: str
    job: str
    cron: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False, compare=True)
    timezone: str = "UTC"
    queue: str | None = None
    priority: int | None = None
    catch_up: bool = True
    source: str = SOURCE_SETTINGS

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def has_seconds(self) -> bool:
        return len(self.cron.split()) == 6

    def _croniter(self, start: datetime) -> croniter:
        return croniter(self.cron, start, second_at_beginning=self.has_seconds)

    # -- ticks -----------------------------------------------------------------------

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        """Every tick strictly after ``after`` (aware), as aware UTC datetimes."""
        after = as_utc(after)
        zone = self.zone
        # A tick later than ``after`` can have a wall time before after's own wall time
        # when the offset drops (fall-back) in between: start that much earlier.
        start = _wall(after, zone) - _shift(after, zone)
        it = self._croniter(start)
        last = after
        while True:
            tick = to_utc(it.get_next(datetime), zone)
            if tick > last:
                last = tick
                yield tick

    def latest_tick(self, now: datetime) -> datetime | None:
        """The last tick at or before ``now``, as aware UTC (None: none in ten years)."""
        now = as_utc(now)
        zone = self.zone
        # A tick at or before ``now`` can have a wall time after now's own wall time when
        # the offset dropped (fall-back) in between: start that much later. get_prev is
        # strictly before its start, hence the extra second.
        start = _wall(now, zone) + _shift(now - _MAX_SHIFT, zone) + timedelta(seconds=1)
        it = self._croniter(start.replace(microsecond=0))
        floor = now - timedelta(days=3660)
        while True:
            tick = to_utc(it.get_prev(datetime), zone)
            if tick <= now:
                return tick
            if tick < floor:  # pragma: no cover - get_prev always goes back
                return None

    def next_runs(self, n: int = 3, after: datetime | None = None) -> list[datetime]:
        """The next ``n`` ticks after ``after`` (default: now), aware in the schedule's zone."""
        from .. import clock

        ticks = self.ticks_after(after or clock.now())
        zone = self.zone
        return [next(ticks).astimezone(zone) for _ in range(n)]


def as_utc(moment: datetime) -> datetime:
    """``moment`` as aware UTC; a naive value is UTC (what the jobs tables hold under
    ``USE_TZ = False``)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _shift(moment: datetime, zone: ZoneInfo) -> timedelta:
    """How much the offset changes in the window after ``moment`` (zero or positive)."""
    offsets = [
        (moment + step).astimezone(zone).utcoffset() or timedelta(0)
        for step in (timedelta(0), _MAX_SHIFT)
    ]
    return abs(offsets[1] - offsets[0])


def to_utc(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant of the naive wall time ``wall`` in ``zone``, by the DST rule above."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) == wall:
        return first  # exists; when ambiguous, fold=0 is its first occurrence
    # In a gap: fold=0 reads it with the offset before the transition (an instant after
    # it), fold=1 with the offset after it (an instant before it). The transition, the
    # first instant whose wall time is past ``wall``, lies between: find it to the second.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + timedelta(seconds=1)
        if _wall(middle, zone) > wall:
            high = middle
        else:
            low = middle
    return high


# -- parsing ---------------------------------------------------------------------------


def default_timezone() -> str:
    return getattr(settings, "TIME_ZONE", None) or "UTC"


def is_valid_cron(expression: Any) -> bool:
    """Whether croniter accepts ``expression`` as this module reads it (6 fields: seconds
    first)."""
    if not isinstance(expression, str) or not expression.strip():
        return False
    seconds = len(expression.split()) == 6
    try:
        return bool(croniter.is_valid(expression, second_at_beginning=seconds))
    except Exception:  # croniter raises more than its own errors on odd input
        return False


def is_valid_timezone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def from_entry(key: str, entry: dict[str, Any]) -> Schedule | None:
    """A ``JOBS["SCHEDULE"]`` entry as a Schedule; None when it cannot run (the checks
    E080–E089 say why)."""
    if set(entry) - set(SCHEDULE_DEFAULTS):
        return None
    values = {**SCHEDULE_DEFAULTS, **entry}
    job, cron = values["JOB"], values["CRON"]
    zone = values["TIMEZONE"] if values["TIMEZONE"] is not None else default_timezone()
    args, kwargs = values["ARGS"], values["KWARGS"]
    priority, catch_up = values["PRIORITY"], values["CATCH_UP"]
    if (
        not isinstance(job, str)
        or not is_valid_cron(cron)
        or not is_valid_timezone(zone)
        or not isinstance(args, list | tuple)
        or not isinstance(kwargs, dict)
        or not is_json([args, kwargs])
        or not (values["QUEUE"] is None or isinstance(values["QUEUE"], str))
        or not (priority is None or (isinstance(priority, int) and not isinstance(priority, bool)))
        or not isinstance(catch_up, bool)
    ):
        return None
    return Schedule(
        key=key,
        job=job,
        cron=cron.strip(),
        args=tuple(args),
        kwargs=dict(kwargs),
        timezone=zone,
        queue=values["QUEUE"],
        priority=priority,
        catch_up=catch_up,
        source=SOURCE_SETTINGS,
    )


def decorator_schedules() -> dict[str, Schedule]:
    """Schedules of ``@job(cron=...)``: the key is the job's registered name."""
    from .. import registry

    found = {}
    for name, definition in registry.all_jobs().items():
        cron = getattr(definition, "cron", None)
        if cron is not None and is_valid_cron(cron):
            found[name] = Schedule(
                key=name,
                job=name,
                cron=cron.strip(),
                timezone=default_timezone(),
                source=SOURCE_DECORATOR,
            )
    return found


def register_builtin(key: str, factory: Callable[[], Schedule | None]) -> None:
    """Add a built-in schedule (e.g. pruning). ``factory`` is called each time schedules
    are read, so it follows settings; returning None turns the schedule off."""
    _builtins[key] = factory


def builtin_keys() -> list[str]:
    """The keys of built-in schedules, without building them (checks must not depend on
    the settings they are checking being parseable)."""
    return list(_builtins)


def builtin_schedules() -> dict[str, Schedule]:
    found = {}
    for key, factory in _builtins.items():
        schedule = factory()
        if schedule is not None:
            found[key] = schedule
    return found


def all_schedules() -> dict[str, Schedule]:
    """Every runnable schedule by key: built-ins, ``@job(cron=...)``, then settings.

    A later source wins a key clash (check E089 reports it). Invalid settings entries are
    left out here; the checks report them and workers refuse to start.
    """
    schedules = {**builtin_schedules(), **decorator_schedules()}
    for key, entry in jobs_settings().schedule:
        schedule = from_entry(key, entry)
        if schedule is not None:
            schedules[key] = schedule
    return dict(sorted(schedules.items()))
