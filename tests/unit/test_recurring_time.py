"""Tick computation through the 2026 DST transitions (no database).

The rule (docs/howto/recurring.md): a wall time in the spring-forward gap runs at the
first valid time after the gap; a wall time of the fall-back hour runs once, at its first
occurrence. So a daily job runs exactly once on each transition day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from django_jobs.recurring.schedule import Schedule, to_utc

NEW_YORK, PARIS = "America/New_York", "Europe/Paris"

#: (zone, transition day, cron, the run on that day as local wall time and UTC offset)
CASES = [
    # Spring forward: 02:00 → 03:00. 02:30 does not exist: it runs at 03:00 (summer time).
    (NEW_YORK, date(2026, 3, 8), "30 2 * * *", "2026-03-08T03:00:00-04:00"),
    (PARIS, date(2026, 3, 29), "30 2 * * *", "2026-03-29T03:00:00+02:00"),
    # ...and the hour before the gap is untouched.
    (NEW_YORK, date(2026, 3, 8), "30 1 * * *", "2026-03-08T01:30:00-05:00"),
    (PARIS, date(2026, 3, 29), "30 1 * * *", "2026-03-29T01:30:00+01:00"),
    # Fall back: New York repeats 01:00–02:00, Paris 02:00–03:00: the first occurrence.
    (NEW_YORK, date(2026, 11, 1), "30 1 * * *", "2026-11-01T01:30:00-04:00"),
    (NEW_YORK, date(2026, 11, 1), "30 2 * * *", "2026-11-01T02:30:00-05:00"),
    (PARIS, date(2026, 10, 25), "30 2 * * *", "2026-10-25T02:30:00+02:00"),
    (PARIS, date(2026, 10, 25), "30 1 * * *", "2026-10-25T01:30:00+02:00"),
]


@pytest.mark.parametrize(("zone", "day", "cron", "expected"), CASES)
def test_a_daily_job_runs_exactly_once_on_each_transition_day(zone, day, cron, expected):
    schedule = Schedule(key="k", job="j", cron=cron, timezone=zone)
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz) - timedelta(days=2)
    runs = schedule.next_runs(5, after=start)
    days = [run.date() for run in runs]
    assert days == [start.date() + timedelta(days=i) for i in range(5)]  # one a day
    (on_the_day,) = [run for run in runs if run.date() == day]
    assert on_the_day.isoformat() == expected
    # The run is the same instant whichever way it is reached: from before, or as the
    # latest tick seen just after it (what a scheduler polling at that moment computes).
    # Arithmetic in UTC: aware arithmetic in the zone is wall-clock arithmetic, and
    # Python never finds a time of a repeated hour equal to one in another zone.
    at = on_the_day.astimezone(UTC)
    assert schedule.latest_tick(at + timedelta(seconds=1)) == at
    assert schedule.latest_tick(at - timedelta(seconds=1)) < at - timedelta(hours=20)


def test_every_15_minutes_through_the_new_york_gap_and_the_repeated_hour():
    schedule = Schedule(key="k", job="j", cron="*/15 * * * *", timezone=NEW_YORK)
    spring = schedule.next_runs(4, after=datetime(2026, 3, 8, 6, 40, tzinfo=UTC))
    # 02:00, 02:15, 02:30, 02:45 do not exist: one run at 03:00, then the cadence.
    assert [t.isoformat() for t in spring] == [
        "2026-03-08T01:45:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:15:00-04:00",
        "2026-03-08T03:30:00-04:00",
    ]
    autumn = schedule.next_runs(4, after=datetime(2026, 11, 1, 5, 40, tzinfo=UTC))
    # 01:xx runs in its first occurrence (EDT); the repeated hour (EST) has no runs.
    assert [t.isoformat() for t in autumn] == [
        "2026-11-01T01:45:00-04:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T02:15:00-05:00",
        "2026-11-01T02:30:00-05:00",
    ]
    during_the_repeat = datetime(2026, 11, 1, 6, 20, tzinfo=UTC)  # 01:20 EST, second time
    assert schedule.latest_tick(during_the_repeat).isoformat() == "2026-11-01T05:45:00+00:00"


def test_to_utc_gap_ends_at_the_transition_to_the_second():
    tz = ZoneInfo(NEW_YORK)
    assert to_utc(datetime(2026, 3, 8, 2, 0), tz) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert to_utc(datetime(2026, 3, 8, 2, 59, 59), tz) == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert to_utc(datetime(2026, 3, 8, 1, 59, 59), tz) == datetime(
        2026, 3, 8, 6, 59, 59, tzinfo=UTC
    )
    assert to_utc(datetime(2026, 11, 1, 1, 0), tz) == datetime(2026, 11, 1, 5, 0, tzinfo=UTC)


def test_aliases_and_seconds_first():
    after = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)  # Monday

    def first(cron):
        return Schedule(key="k", job="j", cron=cron).next_runs(1, after)[0]

    assert first("@hourly") == after + timedelta(hours=1)
    assert first("@daily") == first("@midnight") == datetime(2026, 5, 5, tzinfo=UTC)
    assert first("@weekly") == datetime(2026, 5, 10, tzinfo=UTC)  # Sunday
    assert first("@monthly") == datetime(2026, 6, 1, tzinfo=UTC)
    assert first("@yearly") == datetime(2027, 1, 1, tzinfo=UTC)
    assert first("*/20 * * * * *") == after + timedelta(seconds=20)
    assert first("0 30 12 * * *") == after + timedelta(minutes=30)  # second minute hour
