"""Three supervisors (three ``jobs work`` processes, as on three hosts) share one schedule:
every tick of an every-second schedule is enqueued exactly once and its job runs once."""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import timedelta

import pytest

from django_jobs.models import Job, ScheduleRun
from tests.conftest import wait_until
from tests.processes.conftest import group
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

KEY = "every-second"
SCHEDULE = {KEY: {"JOB": "tests.processes.app.jobs.tick", "CRON": "* * * * * *", "ARGS": ["t"]}}
TICKS = 12


def test_three_supervisors_enqueue_each_tick_exactly_once(jobs_cmd):
    env = {"DJANGO_JOBS_SCHEDULE": json.dumps(SCHEDULE)}
    # One host's worker identities are per group: each supervisor gets a group of its own
    # (only the first serves "default", the schedule's queue); all three run a scheduler.
    supervisors = [
        jobs_cmd("jobs", "work", workers=[group(QUEUE=queue)], **env)
        for queue in ("default", "email", "slow")
    ]
    runs = ScheduleRun.objects.filter(key=KEY)
    wait_until(lambda: runs.count() >= TICKS, timeout=30, what=f"{TICKS} ticks")
    wait_until(
        lambda: Execution.objects.filter(key="t").count() >= TICKS - 2,
        timeout=10,
        what="the ticks' jobs to run",
    )
    for supervisor in supervisors:
        supervisor.signal(signal.SIGTERM)
    for supervisor in supervisors:
        assert supervisor.wait(30) == 0

    rows = list(runs.order_by("tick"))
    ticks = [row.tick for row in rows]
    # Every second from the first tick to the last, each once (no gap, no duplicate).
    assert ticks == [ticks[0] + timedelta(seconds=n) for n in range(len(ticks))]
    assert all(tick.microsecond == 0 for tick in ticks) and len(ticks) >= TICKS
    assert not any(row.manual for row in rows)
    job_ids = [row.job_id for row in rows]
    assert None not in job_ids and len(set(job_ids)) == len(job_ids)
    # Each tick's job ran once, or is still waiting (stopped before its turn); no other
    # job of the schedule exists.
    ran = Counter(Execution.objects.filter(key="t").values_list("job_id", flat=True))
    assert set(ran.values()) == {1}, ran
    waiting = set(
        Job.objects.filter(name="tests.processes.app.jobs.tick").values_list("id", flat=True)
    )
    assert set(ran) | waiting == set(job_ids) and not set(ran) & waiting
    assert len(ran) >= TICKS - 2
    # Every tick was enqueued by exactly one of the three schedulers, as their logs say.
    enqueued = [s.output().count(f"{KEY}: enqueued") for s in supervisors]
    assert sum(enqueued) == len(rows), enqueued
    print(f"ticks enqueued per supervisor: {enqueued}")
