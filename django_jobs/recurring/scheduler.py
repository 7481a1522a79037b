"""Enqueueing due ticks exactly once, whatever the number of schedulers.

Every supervisor (``jobs work``) runs a scheduler thread, and ``jobs workoff`` runs one
pass, so any number of them may look at the same tick. Each due tick is enqueued in one
transaction on the jobs database that first inserts the tick's ``ScheduleRun`` row, then
the job: the unique constraint on (key, tick) lets exactly one transaction commit, and the
others get an IntegrityError and skip the tick. There is no leader to elect and nothing in
memory to agree on; a scheduler that dies mid-way rolls back its row with its job.

Which ticks are due, on each pass and for each schedule that is not paused: ticks at or
before now, later than the schedule's last enqueued tick and not before the key was first
seen (``Schedule.since``). While a schedule runs without a break (its last tick is within
``catch_up_window()``, 3 s), every such tick is enqueued, so a scheduler that ran a second
late drops nothing. After a gap (downtime, a pause) the ticks were missed: with
``CATCH_UP: True`` (the default) only the most recent one is enqueued, and with
``CATCH_UP: False`` none (a tick of the last 3 s is not a missed one).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, connections
from django.db.models import Max

from .. import clock
from ..conf import jobs_settings
from ..exceptions import JobsError
from .schedule import Schedule, all_schedules, as_utc

if TYPE_CHECKING:
    from ..models import Job, ScheduleRun

logger = logging.getLogger("django_jobs.scheduler")

#: Seconds between two passes of a supervisor's scheduler thread: one second, so a
#: six-field (seconds) schedule is served too; a pass that finds nothing due costs two
#: indexed reads.
SCHEDULER_INTERVAL = 1.0


class UnknownSchedule(JobsError, KeyError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no schedule is called {key!r}")
        self.key = key

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidSchedule(JobsError, ValueError):
    """A schedule the checks reject: workers refuse to start with the checks' messages."""


def refuse_invalid_schedules() -> None:
    """Raise :class:`InvalidSchedule` when a schedule check (E080–E089) fails.

    Called before a supervisor or ``workoff`` starts: a schedule left out because it is
    invalid would otherwise never run, and nobody would notice.
    """
    from ..checks.schedule import schedule_errors

    errors = schedule_errors()
    if errors:
        lines = [f"{e.id}: {e.msg} HINT: {e.hint}" for e in errors]
        raise InvalidSchedule("invalid recurring schedule(s):\n" + "\n".join(lines))


def catch_up_window() -> timedelta:
    """How late a tick may be and still count as on time (not missed): two passes and a
    second, so a scheduler that is merely busy drops no tick."""
    return timedelta(seconds=2 * SCHEDULER_INTERVAL + 1)


def _stored(moment: datetime) -> datetime:
    """An aware UTC datetime as the jobs tables store it (naive UTC under USE_TZ=False)."""
    return moment if settings.USE_TZ else moment.replace(tzinfo=None)


def _alias() -> str:
    return jobs_settings().database


def _states(keys: list[str], now: datetime) -> dict[str, tuple[bool, datetime]]:
    """key → (paused, since) for every key, creating the rows of keys seen first now."""
    from ..models import Schedule as ScheduleRow

    alias = _alias()
    rows = ScheduleRow.objects.using(alias).filter(key__in=keys)
    states = {key: (paused, as_utc(since)) for key, paused, since in rows.values_list(
        "key", "paused", "since"
    )}  # fmt: skip
    missing = [key for key in keys if key not in states]
    if missing:
        stamp = _stored(now)
        # Two schedulers may create the same key at once: the first row stays (and its
        # ``since`` with it), the other insert is ignored.
        ScheduleRow.objects.using(alias).bulk_create(
            [ScheduleRow(key=key, since=stamp, updated_at=stamp) for key in missing],
            ignore_conflicts=True,
        )
        for key, paused, since in (
            ScheduleRow.objects.using(alias)
            .filter(key__in=missing)
            .values_list("key", "paused", "since")
        ):
            states[key] = (paused, as_utc(since))
    return states


def _last_ticks(keys: list[str]) -> dict[str, datetime]:
    from ..models import ScheduleRun

    rows = (
        ScheduleRun.objects.using(_alias())
        .filter(key__in=keys, manual=False)
        .values("key")
        .annotate(last=Max("tick"))
        .values_list("key", "last")
    )
    return {key: as_utc(last) for key, last in rows}


def due_ticks(
    schedule: Schedule, now: datetime, since: datetime, last: datetime | None
) -> list[datetime]:
    """The ticks of ``schedule`` to enqueue at ``now`` (see the module docstring)."""
    floor = since - timedelta(microseconds=1) if last is None else max(since, last)
    recent = now - catch_up_window()
    if (last or since) >= recent:
        # Running without a break: every tick since the last one, so a scheduler that was
        # a second late (a busy host, a slow commit) drops no tick of a per-second schedule.
        ticks = []
        for tick in schedule.ticks_after(floor):
            if tick > now:
                break
            ticks.append(tick)
        return ticks
    # After a gap (downtime, a pause, a first pass): the latest tick only, and with
    # CATCH_UP False only if it is not itself a missed one.
    tick = schedule.latest_tick(now)
    if tick is None or tick <= floor:
        return []
    return [tick] if schedule.catch_up or tick >= recent else []


def run_due(now: datetime | None = None) -> int:
    """Enqueue every due tick of every schedule once; returns how many this call enqueued.

    Another scheduler enqueueing the same tick first is not an error: this call skips it.
    """
    now = as_utc(now or clock.now())
    schedules = all_schedules()
    if not schedules:
        return 0
    keys = list(schedules)
    states = _states(keys, now)
    last_ticks = _last_ticks(keys)
    enqueued = 0
    for key, schedule in schedules.items():
        paused, since = states[key]
        if paused:
            continue
        try:
            for tick in due_ticks(schedule, now, since, last_ticks.get(key)):
                if _enqueue(schedule, tick, manual=False, now=now) is not None:
                    enqueued += 1
        except (DatabaseError, InterfaceError):
            raise  # the database, not this schedule: the caller retries the whole pass
        except Exception:
            # One broken schedule (a job removed from the code since the checks ran)
            # must not hold up the others; its tick is tried again next pass.
            logger.exception("[jobs] schedule %s: could not enqueue its tick", key)
    return enqueued


def _enqueue(schedule: Schedule, tick: datetime, *, manual: bool, now: datetime) -> Job | None:
    """Insert the run row and the job in one transaction; None when the tick was taken."""
    from ..models import ScheduleRun
    from ..scheduling import later
    from ..storage import get_storage

    alias = _alias()
    try:
        # One transaction per tick: a duplicate rolls back only its own tick (and on
        # PostgreSQL an aborted transaction cannot poison the ticks after it).
        with get_storage().write_transaction():
            run = ScheduleRun.objects.using(alias).create(
                key=schedule.key,
                tick=_stored(tick),
                manual=manual,
                enqueued_at=_stored(now),
            )
            job = later(
                schedule.job,
                list(schedule.args),
                dict(schedule.kwargs),
                wait_until=tick,
                queue=schedule.queue,
                priority=schedule.priority,
            )
            ScheduleRun.objects.using(alias).filter(pk=run.pk).update(job_id=job.pk)
    except IntegrityError:
        logger.debug("[jobs] %s tick %s was enqueued by another scheduler", schedule.key, tick)
        return None
    logger.info(
        "[jobs] %s: enqueued %s #%s for %s%s",
        schedule.key, schedule.job, job.pk, tick.isoformat(), " (run now)" if manual else "",
    )  # fmt: skip
    return job


# -- operating: run now, pause, resume, last run ------------------------------------------


def get_schedule(key: str) -> Schedule:
    try:
        return all_schedules()[key]
    except KeyError:
        raise UnknownSchedule(key) from None


def run_now(key: str) -> Job:
    """Enqueue one job of schedule ``key`` now, outside its cadence (a manual run).

    It does not move the cadence: the next tick is enqueued as usual.
    """
    schedule = get_schedule(key)
    now = as_utc(clock.now())
    # The tick of a manual run is the time of the request; two requests in the same
    # microsecond (or one landing exactly on a tick) would collide: nudge it.
    for attempt in range(5):
        job = _enqueue(schedule, now + timedelta(microseconds=attempt), manual=True, now=now)
        if job is not None:
            return job
    raise JobsError(f"could not record a manual run of {key!r}")  # pragma: no cover


def _set_paused(key: str, paused: bool) -> None:
    from ..models import Schedule as ScheduleRow

    get_schedule(key)  # an unknown key is a mistake, not a new row
    alias = _alias()
    now = _stored(as_utc(clock.now()))
    updated = ScheduleRow.objects.using(alias).filter(key=key).update(paused=paused, updated_at=now)
    if not updated:
        ScheduleRow.objects.using(alias).bulk_create(
            [ScheduleRow(key=key, paused=paused, since=now, updated_at=now)],
            ignore_conflicts=True,
        )
        ScheduleRow.objects.using(alias).filter(key=key).update(paused=paused, updated_at=now)
    logger.info("[jobs] schedule %s %s", key, "paused" if paused else "resumed")


def pause(key: str) -> None:
    """Stop enqueueing ``key``'s ticks; every scheduler honours it within one pass."""
    _set_paused(key, True)


def resume(key: str) -> None:
    """Enqueue ``key``'s ticks again. A tick missed while paused is caught up by the
    schedule's CATCH_UP rule, like downtime."""
    _set_paused(key, False)


def is_paused(key: str) -> bool:
    from ..models import Schedule as ScheduleRow

    return ScheduleRow.objects.using(_alias()).filter(key=key, paused=True).exists()


def last_run(key: str) -> ScheduleRun | None:
    """The most recently enqueued run of ``key`` (a tick or a manual run), or None."""
    from ..models import ScheduleRun

    return (
        ScheduleRun.objects.using(_alias()).filter(key=key).order_by("-enqueued_at", "-id").first()
    )


# -- the supervisor's thread ---------------------------------------------------------------


class SchedulerThread(threading.Thread):
    """Runs :func:`run_due` every ``interval`` seconds on a connection of its own."""

    def __init__(self, interval: float = SCHEDULER_INTERVAL) -> None:
        super().__init__(name="django_jobs-scheduler", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        self.failing = False

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self.run_once()
                self.stopping.wait(self._until_next())
        finally:
            connections.close_all()  # this thread's connections only

    def _until_next(self) -> float:
        # Wake just after the next whole interval so a tick on the second is enqueued
        # within a few milliseconds of it, not up to a second late.
        now = clock.now().timestamp()
        return self.interval - (now % self.interval) + 0.005

    def run_once(self) -> None:
        try:
            run_due()
            if self.failing:
                logger.info("[jobs] scheduler: the database is back")
            self.failing = False
        except (DatabaseError, InterfaceError) as exc:
            if not self.failing:
                logger.warning("[jobs] scheduler cannot reach the database: %s", exc)
            self.failing = True
            connections.close_all()
        except Exception:
            # A bug or a bad schedule must not stop the thread (and every later tick).
            logger.exception("[jobs] scheduler pass failed")
            connections.close_all()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout)
