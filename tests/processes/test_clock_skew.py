"""Hosts whose clocks are 10 minutes off: liveness follows the database's clock, so a live
worker never looks dead to its peers, and a worker whose clock runs ahead never takes
jobs from live ones.

DJANGO_JOBS_CLOCK_SKEW moves a worker's clock (django_jobs.clock.SKEW), as a host whose
clock is wrong. Judged by the hosts' clocks, the worker 10 minutes behind would write
heartbeats, claims and deadlines 10 minutes in the past (its peers recover its jobs at
once), and the one 10 minutes ahead would find every other heartbeat 10 minutes stale.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from django_jobs import later_many
from django_jobs.models import Job, Worker
from django_jobs.storage import get_storage
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import group
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

HEARTBEAT = 2.0
SKEWS = {"behind": -600, "right": 0, "ahead": 600}


def test_workers_with_clocks_ten_minutes_off_neither_look_dead_nor_take_live_jobs(jobs_cmd):
    # MAX_RUNTIME gives every job a deadline the skew would put in the past.
    workers = [group(THREADS=1, BATCH_SIZE=1, MAX_RUNTIME=30)]
    for n, skew in enumerate(SKEWS.values()):
        jobs_cmd("jobs", "worker", "--index", "0", "--id", str(n), workers=workers,
                 heartbeat=HEARTBEAT, DJANGO_JOBS_CLOCK_SKEW=str(skew))  # fmt: skip
    identities = wait_until(
        lambda: (rows := set(Worker.objects.values_list("identity", flat=True)))
        and len(rows) == 3 and rows,
        what="three registered workers",
    )  # fmt: skip
    # Long enough for several lifeline passes of every worker (one each HEARTBEAT / 2).
    seconds = 4 * HEARTBEAT
    keys = [f"long{n}" for n in range(3)]
    later_many(process_jobs.long_one, [[key, seconds] for key in keys])
    wait_until(
        lambda: Execution.objects.filter(key__endswith=":start").values("pid").distinct().count()
        == 3,
        what="each worker running one long job",
    )  # fmt: skip
    # What the workers wrote is on the database's clock, not on their own.
    now = get_storage().database_now()
    for locked_at, started_at, expires_at in Job.objects.values_list(
        "locked_at", "started_at", "expires_at"
    ):
        assert abs(locked_at - now) < timedelta(seconds=30), (locked_at, now)
        if started_at is not None:
            assert abs(started_at - now) < timedelta(seconds=30), (started_at, now)
            assert expires_at - started_at == timedelta(seconds=30)
    wait_until(lambda: not Job.objects.exists(), timeout=4 * seconds, what="the long jobs")
    # Each ran once, to its end: none was recovered from its live worker.
    starts = sorted(Execution.objects.filter(key__endswith=":start").values_list("key", flat=True))
    assert starts == sorted(f"{key}:start" for key in keys)
    assert sorted(Execution.objects.filter(key__in=keys).values_list("key", flat=True)) == keys
    # And no worker row was removed as dead meanwhile (a removed one registers again).
    assert set(Worker.objects.values_list("identity", flat=True)) == identities
    log = "".join(proc.output() for proc in jobs_cmd.started)
    assert "presumed dead" not in log and "recovered" not in log
    # The two hosts with a wrong clock said so when they started.
    assert log.count("s off the database's") == 2
