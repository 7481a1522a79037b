"""Recurring schedules in one process: due ticks, catch-up, pause, run now, @job(cron).

``run_due(now=...)`` is called with explicit times against the real test database; the
multi-process "exactly once" proof is in tests/processes/test_recurring_processes.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import override_settings

from django_jobs import job
from django_jobs.models import Job, Schedule, ScheduleRun
from django_jobs.recurring import schedule as schedule_module
from django_jobs.recurring.schedule import all_schedules, register_builtin
from django_jobs.recurring.scheduler import (
    UnknownSchedule,
    is_paused,
    last_run,
    pause,
    resume,
    run_due,
    run_now,
)
from tests.settings import JOBS

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday at noon


def jobs_with(schedule: dict) -> dict:
    # No built-in prune schedule: the counts below are of these schedules alone.
    return {**JOBS, "SCHEDULE": schedule, "PRUNE": None}


def every_minute(**extra) -> dict:
    return {"JOB": "tests.testapp.jobs.record", "CRON": "* * * * *", "ARGS": ["m"], **extra}


def runs(key: str, manual: bool = False) -> list[datetime]:
    return list(
        ScheduleRun.objects.filter(key=key, manual=manual)
        .order_by("tick")
        .values_list("tick", flat=True)
    )


@override_settings(JOBS=jobs_with({"m": every_minute()}))
def test_first_sight_sets_since_and_enqueues_no_earlier_tick():
    assert run_due(T0 + timedelta(seconds=30)) == 0  # 12:00 is before the key was seen
    assert Schedule.objects.get(key="m").since == T0 + timedelta(seconds=30)
    assert run_due(T0 + timedelta(seconds=61)) == 1
    assert runs("m") == [T0 + timedelta(minutes=1)]
    assert run_due(T0 + timedelta(seconds=62)) == 0  # the same tick, once
    job = Job.objects.get()
    assert job.run_at == T0 + timedelta(minutes=1)  # run_at is the tick, not "now"
    assert (job.name, job.args, job.queue, job.priority) == (
        "tests.testapp.jobs.record", ["m"], "default", 50,
    )  # fmt: skip
    assert ScheduleRun.objects.get().job_id == job.pk


@override_settings(JOBS=jobs_with({"m": every_minute()}))
def test_catch_up_enqueues_only_the_latest_missed_tick():
    run_due(T0 + timedelta(seconds=1))  # first sight, just after the 12:00 tick
    # Down from 12:00 to 12:10:30: ten ticks missed, one enqueued, the most recent.
    assert run_due(T0 + timedelta(minutes=10, seconds=30)) == 1
    assert runs("m") == [T0 + timedelta(minutes=10)]
    assert Job.objects.get().run_at == T0 + timedelta(minutes=10)


@override_settings(JOBS=jobs_with({"m": every_minute(CATCH_UP=False)}))
def test_catch_up_false_skips_missed_ticks_but_runs_punctual_ones():
    run_due(T0 + timedelta(seconds=1))  # first sight, just after the 12:00 tick
    assert run_due(T0 + timedelta(minutes=10, seconds=30)) == 0
    assert Job.objects.count() == 0
    assert run_due(T0 + timedelta(minutes=11, seconds=1)) == 1  # within the window
    assert runs("m") == [T0 + timedelta(minutes=11)]


@override_settings(
    JOBS=jobs_with({"m": every_minute(), "other": every_minute(ARGS=["o"], QUEUE="email")})
)
def test_a_paused_schedule_enqueues_nothing_while_another_keeps_running():
    run_due(T0 + timedelta(seconds=1))  # first sight, just after the 12:00 tick
    pause("m")
    assert is_paused("m") and not is_paused("other")
    for minute in range(1, 4):
        run_due(T0 + timedelta(minutes=minute, seconds=1))
    assert runs("m") == []
    assert len(runs("other")) == 3
    assert set(Job.objects.values_list("queue", flat=True)) == {"email"}
    resume("m")
    assert run_due(T0 + timedelta(minutes=4, seconds=1)) == 2
    assert runs("m") == [T0 + timedelta(minutes=4)]


@override_settings(JOBS=jobs_with({"m": every_minute()}))
def test_run_now_enqueues_exactly_one_and_keeps_the_cadence():
    run_due(T0 + timedelta(seconds=1))  # first sight, just after the 12:00 tick
    job = run_now("m")
    assert Job.objects.count() == 1 and Job.objects.get().pk == job.pk
    manual = ScheduleRun.objects.get(manual=True)
    assert manual.job_id == job.pk and manual.key == "m"
    assert last_run("m").pk == manual.pk
    # The manual run does not count as a tick: the next tick is still enqueued.
    assert run_due(T0 + timedelta(minutes=1, seconds=1)) == 1
    assert Job.objects.count() == 2
    with pytest.raises(UnknownSchedule):
        run_now("nope")
    with pytest.raises(UnknownSchedule):
        pause("nope")


@override_settings(JOBS=jobs_with({"m": every_minute()}))
def test_a_tick_already_taken_is_skipped_and_the_job_rolled_back():
    run_due(T0 + timedelta(seconds=1))  # first sight, just after the 12:00 tick
    tick = T0 + timedelta(minutes=1)
    # Another scheduler committed this tick's row first (and its job with it).
    ScheduleRun.objects.create(key="m", tick=tick, enqueued_at=tick)
    assert run_due(T0 + timedelta(seconds=61)) == 0
    assert Job.objects.count() == 0  # ours was rolled back with the duplicate row
    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduleRun.objects.create(key="m", tick=tick, enqueued_at=tick)


@override_settings(JOBS=jobs_with({"m": every_minute()}))
def test_removing_a_schedule_stops_it_and_keeps_its_history():
    run_due(T0 + timedelta(seconds=1))  # first sight, just after the 12:00 tick
    run_due(T0 + timedelta(seconds=61))
    with override_settings(JOBS=jobs_with({})):
        assert run_due(T0 + timedelta(seconds=121)) == 0
        assert "m" not in all_schedules()
    assert len(runs("m")) == 1 and Schedule.objects.filter(key="m").exists()


@override_settings(
    JOBS=jobs_with(
        {"s": {"JOB": "tests.testapp.jobs.noop", "CRON": "*/10 * * * * *", "PRIORITY": 3}}
    )
)
def test_six_fields_are_seconds_first():
    run_due(T0 + timedelta(seconds=1))  # first sight, just after the 12:00 tick
    assert run_due(T0 + timedelta(seconds=10)) == 1
    assert run_due(T0 + timedelta(seconds=15)) == 0
    assert run_due(T0 + timedelta(seconds=20, microseconds=1)) == 1
    assert runs("s") == [T0 + timedelta(seconds=10), T0 + timedelta(seconds=20)]
    assert set(Job.objects.values_list("priority", flat=True)) == {3}


@override_settings(USE_TZ=False)
@override_settings(JOBS=jobs_with({"m": every_minute()}))
def test_use_tz_false_stores_naive_utc():
    naive = T0.replace(tzinfo=None)
    run_due(naive + timedelta(seconds=1))
    assert run_due(naive + timedelta(seconds=61)) == 1
    row = ScheduleRun.objects.get()
    assert row.tick == naive + timedelta(minutes=1) and row.tick.tzinfo is None
    assert Job.objects.get().run_at == naive + timedelta(minutes=1)


def test_job_cron_schedules_under_the_job_name_and_refuses_arguments():
    @job(name="tests.hourly_report", cron="@hourly")
    def hourly_report():
        pass

    found = all_schedules()["tests.hourly_report"]
    assert (found.job, found.cron, found.timezone, found.source) == (
        "tests.hourly_report", "@hourly", "UTC", "@job(cron=...)",
    )  # fmt: skip
    run_due(T0 + timedelta(minutes=1))
    run_due(T0 + timedelta(hours=1, seconds=1))
    assert runs("tests.hourly_report") == [T0 + timedelta(hours=1)]

    with pytest.raises(TypeError, match="takes no arguments"):

        @job(name="tests.needs_args", cron="@daily")
        def needs_args(user_id):
            pass

    @job(name="tests.defaults_ok", cron="@daily")
    def defaults_ok(limit=10):
        pass


def test_builtin_schedules_come_from_their_factory():
    enabled = {"on": True}

    def factory():
        if not enabled["on"]:
            return None
        return schedule_module.Schedule(
            key="tests-builtin", job="tests.testapp.jobs.noop", cron="@daily",
            source=schedule_module.SOURCE_BUILTIN,
        )  # fmt: skip

    register_builtin("tests-builtin", factory)
    try:
        assert all_schedules()["tests-builtin"].source == "built-in"
        enabled["on"] = False
        assert "tests-builtin" not in all_schedules()
    finally:
        schedule_module._builtins.pop("tests-builtin", None)


@override_settings(
    JOBS=jobs_with(
        {
            "nightly": {
                "JOB": "tests.testapp.jobs.record",
                "CRON": "30 2 * * *",
                "ARGS": ["n"],
                "TIMEZONE": "America/New_York",
            },
            "often": every_minute(),
            "never": every_minute(ARGS=["z"]),
        }
    )
)
def test_jobs_schedule_command_prints_every_schedule():
    from io import StringIO

    from django.core.management import call_command

    from django_jobs.recurring.report import render_schedules

    pause("never")
    run_due(T0 + timedelta(seconds=1))
    run_due(T0 + timedelta(seconds=61))  # "often": 12:01 enqueued, still scheduled
    done = run_now("nightly")
    Job.objects.filter(pk=done.pk).delete()  # as a worker does with a success
    out = StringIO()
    call_command("jobs", "schedule", stdout=out)
    text = out.getvalue()
    assert text == render_schedules()
    # A fixed "now" for the next runs: the Sunday of New York's spring-forward.
    text = render_schedules(now=datetime(2026, 3, 7, 12, tzinfo=UTC))
    ours = {"never", "nightly", "often"}  # built-ins (pruning) may be listed too
    heads = [line for line in text.split("\n") if line and line[0] != " "]
    assert heads == sorted(heads)
    blocks = {line.split()[0]: line for line in heads if line.split()[0] in ours}
    assert blocks == {
        "never": "never  [paused]",
        "nightly": "nightly  [active]",
        "often": "often  [active]",
    }
    assert (
        "nightly  [active]\n"
        "  job:       tests.testapp.jobs.record  (settings)\n"
        "  cron:      30 2 * * *  in America/New_York\n"
        "  next runs: 2026-03-08 03:00:00 EDT, 2026-03-09 02:30:00 EDT, 2026-03-10 02:30:00 EDT\n"
        "  last run:  "
    ) in text
    assert "(run now): done (row deleted)\n" in text
    assert "  last run:  2026-05-04 12:01:00 UTC: scheduled\n" in text
    assert "never  [paused]\n" in text and "  last run:  not yet\n" in text


@override_settings(JOBS=jobs_with({"s": {"JOB": "tests.testapp.jobs.noop", "CRON": "* * * * * *"}}))
def test_a_late_pass_drops_no_recent_tick_but_downtime_is_not_replayed():
    run_due(T0 + timedelta(milliseconds=500))
    # Two seconds late (a busy host): both ticks are still on time.
    assert run_due(T0 + timedelta(milliseconds=2500)) == 2
    # Down for 28 s: the most recent missed tick only, not 28 of them.
    assert run_due(T0 + timedelta(milliseconds=30500)) == 1
    assert runs("s") == [T0 + timedelta(seconds=n) for n in (1, 2, 30)]


@override_settings(JOBS=jobs_with({"m": every_minute(ARGS=["w"])}))
def test_workoff_enqueues_the_due_tick_then_runs_it():
    from io import StringIO

    from django.core.management import call_command

    from django_jobs import clock
    from tests.testapp.models import Execution

    Schedule.objects.create(key="m", since=clock.now() - timedelta(minutes=5))
    err = StringIO()
    call_command("jobs", "workoff", stdout=StringIO(), stderr=err)
    assert "enqueued 1 recurring job(s)" in err.getvalue()
    assert Execution.objects.filter(key="w").count() == 1
    assert ScheduleRun.objects.filter(key="m").count() == 1


def _kill_other_connections() -> int:
    """End every other server connection to the test database (the scheduler thread's)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return len(cursor.fetchall())
        cursor.execute(
            "SELECT id FROM information_schema.processlist"
            " WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for pid in ids:
            cursor.execute(f"KILL {int(pid)}")
        return len(ids)


@override_settings(JOBS=jobs_with({"s": {"JOB": "tests.testapp.jobs.noop", "CRON": "* * * * * *"}}))
def test_the_scheduler_thread_survives_a_lost_connection(caplog):
    from django.db import connection

    from django_jobs.recurring.scheduler import SchedulerThread
    from tests.conftest import wait_until

    if connection.vendor == "sqlite":
        pytest.skip("no server connection to cut")
    count = ScheduleRun.objects.filter(key="s").count
    thread = SchedulerThread()
    thread.start()
    try:
        wait_until(lambda: count() >= 2, timeout=10, what="two ticks")
        wait_until(_kill_other_connections, timeout=5, what="the scheduler's connection")
        wait_until(
            lambda: "scheduler cannot reach the database" in caplog.text,
            timeout=10,
            what="the scheduler to notice",
        )
        after = count()
        wait_until(lambda: count() >= after + 2, timeout=10, what="ticks after reconnecting")
        # Logged after the tick that found the database again: ticks can land first.
        wait_until(lambda: "the database is back" in caplog.text, timeout=10, what="the log line")
    finally:
        thread.stop()
    assert not thread.is_alive()
    ticks = list(ScheduleRun.objects.filter(key="s").values_list("tick", flat=True))
    assert len(ticks) == len(set(ticks))


@override_settings(
    JOBS=jobs_with({"gone": every_minute(JOB="tests.no_longer_exists"), "m": every_minute()})
)
def test_a_schedule_whose_job_is_gone_does_not_hold_up_the_others(caplog):
    run_due(T0 + timedelta(seconds=1))
    assert run_due(T0 + timedelta(seconds=61)) == 1
    assert runs("m") == [T0 + timedelta(minutes=1)] and runs("gone") == []
    assert "schedule gone: could not enqueue its tick" in caplog.text
    assert "JobNotRegistered" in caplog.text
