"""``manage.py jobs schedule``: every schedule, its next runs and how its last run went."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .. import clock
from ..conf import jobs_settings
from .schedule import Schedule, all_schedules, as_utc

NOT_YET = "not yet"
ROW_DELETED = "done (row deleted)"


@dataclass(frozen=True)
class ScheduleState:
    """What ``jobs schedule`` (and the admin) shows of one schedule."""

    schedule: Schedule
    paused: bool
    next_runs: tuple[datetime, ...]
    last_tick: datetime | None  # in the schedule's time zone
    last_manual: bool
    last_outcome: str


def schedule_states(count: int = 3, now: datetime | None = None) -> list[ScheduleState]:
    """Every schedule, in key order, with its next ``count`` runs and its last run."""
    from ..models import Job, ScheduleRun
    from ..models import Schedule as ScheduleRow

    alias = jobs_settings().database
    schedules = all_schedules()
    keys = list(schedules)
    paused = set(
        ScheduleRow.objects.using(alias)
        .filter(key__in=keys, paused=True)
        .values_list("key", flat=True)
    )
    last: dict[str, ScheduleRun] = {}
    for key in keys:
        run = ScheduleRun.objects.using(alias).filter(key=key).order_by("-enqueued_at", "-id")
        found = run.first()
        if found is not None:
            last[key] = found
    job_ids = [run.job_id for run in last.values() if run.job_id is not None]
    jobs = Job.objects.using(alias).in_bulk(job_ids)
    after = now or clock.now()
    states = []
    for key, schedule in schedules.items():
        run = last.get(key)
        if run is None:
            outcome, tick, manual = NOT_YET, None, False
        else:
            row = jobs.get(run.job_id)
            outcome = str(row.status) if row is not None else ROW_DELETED
            tick, manual = as_utc(run.tick).astimezone(schedule.zone), run.manual
        states.append(
            ScheduleState(
                schedule=schedule,
                paused=key in paused,
                next_runs=tuple(schedule.next_runs(count, after)),
                last_tick=tick,
                last_manual=manual,
                last_outcome=outcome,
            )
        )
    return states


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def render_schedules(now: datetime | None = None) -> str:
    """The text of ``manage.py jobs schedule``."""
    states = schedule_states(3, now)
    if not states:
        return 'No recurring schedules (JOBS["SCHEDULE"], @job(cron=...)).\n'
    lines = []
    for state in states:
        s = state.schedule
        lines.append(f"{s.key}  [{'paused' if state.paused else 'active'}]")
        lines.append(f"  job:       {s.job}  ({s.source})")
        lines.append(f"  cron:      {s.cron}  in {s.timezone}")
        lines.append(f"  next runs: {', '.join(_when(t) for t in state.next_runs)}")
        if state.last_tick is None:
            lines.append(f"  last run:  {NOT_YET}")
        else:
            how = " (run now)" if state.last_manual else ""
            lines.append(f"  last run:  {_when(state.last_tick)}{how}: {state.last_outcome}")
    return "\n".join(lines) + "\n"
