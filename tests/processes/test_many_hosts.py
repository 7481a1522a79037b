"""Workers on three hosts (network namespaces with addresses of their own) against one
database; one host is cut off mid-job.

Its jobs are recovered by the other hosts within 2 × HEARTBEAT_TIMEOUT; nothing is lost;
nothing runs twice but the jobs it held at the cut; when its link comes back, the outcomes
it still writes for those jobs are refused by their claim tokens (the jobs run on
elsewhere), and its workers register again and take new jobs.

PostgreSQL and MariaDB/MySQL only: an SQLite database is one file on one machine, which
workers on other hosts cannot share (a network file system breaks SQLite's locking).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection

from django_jobs import clock, later_many
from django_jobs.models import Job, Worker
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import group
from tests.processes.netns import Network, namespaces_available
from tests.testapp.models import Execution

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="an SQLite database is one file on one machine: no other host can share it",
    ),
    pytest.mark.skipif(bool(namespaces_available()), reason=namespaces_available() or "-"),
]

HEARTBEAT = 3.0
#: How long the jobs run on their first attempt: long enough that the host, seen running
#: two, is still running them when the cut (a few `ip` commands) lands on a loaded machine.
FIRST = 1.0
#: A recovered job runs this long on its next attempt: still running when the cut-off
#: host comes back and writes its stale outcome.
AGAIN = 10.0


def database_env(host, port: int) -> dict[str, str]:
    """Connect through ``host``'s link (PGHOST/MYSQL_HOST are read by tests/settings.py)."""
    if connection.vendor == "postgresql":
        return {"PGHOST": host.gateway, "PGPORT": str(port)}
    return {"MYSQL_HOST": host.gateway, "MYSQL_PORT": str(port)}


def workers_on(name: str) -> dict[str, int]:
    return dict(Worker.objects.filter(host=name).values_list("identity", "pid"))


def test_a_host_cut_off_mid_job_is_recovered_fenced_and_rejoins(jobs_cmd):
    settings = connection.settings_dict
    target = (settings["HOST"] or "127.0.0.1", int(settings["PORT"]))
    workers = [group(count=2, THREADS=1, BATCH_SIZE=1, SLEEP_DELAY=0.5)]
    with Network(3, target) as network:
        procs = {}
        for host in network.hosts:
            procs[host.name] = jobs_cmd(
                "jobs", "work", workers=workers, heartbeat=HEARTBEAT, prefix=host.prefix,
                **database_env(host, network.port),
            )  # fmt: skip
        names = [host.name for host in network.hosts]
        wait_until(
            lambda: all(len(workers_on(name)) == 2 for name in names),
            what="two workers registered on each host",
        )  # fmt: skip
        cut, others = network.hosts[0], names[1:]
        cut_workers = workers_on(cut.name)

        first = [f"a{n}" for n in range(90)]
        later_many(process_jobs.on_host, [[key, FIRST, AGAIN] for key in first])

        # Its workers run jobs, one started a moment ago (most of its FIRST seconds still
        # ahead: a loaded machine takes a while to cut a link): cut the host off.
        def just_started() -> bool:
            recent = clock.now() - timedelta(seconds=0.25)
            running = Job.objects.filter(locked_by__in=list(cut_workers), started_at__isnull=False)
            return (
                running.filter(started_at__gte=recent).exists()
                and Execution.objects.filter(pid__in=cut_workers.values()).exists()
            )

        wait_until(just_started, interval=0.01, what="the host to cut running jobs")
        cut.cut()
        cut_at = time.monotonic()
        # What reached the database before the cut is all that did: the jobs held then.
        time.sleep(0.2)
        held = dict(Job.objects.filter(locked_by__in=list(cut_workers)).values_list("id", "args"))
        held_keys = {args[0] for args in held.values()}
        assert held, "the cut host held no job at the cut"
        wait_until(
            lambda: not Job.objects.filter(locked_by__in=list(cut_workers)).exists(),
            timeout=4 * HEARTBEAT, interval=0.02, what="the cut host's jobs to be recovered",
        )  # fmt: skip
        recovered_after = time.monotonic() - cut_at
        assert recovered_after <= 2 * HEARTBEAT, recovered_after
        # The other hosts drain the queue meanwhile.
        wait_until(
            lambda: Execution.objects.filter(key__in=set(first) - held_keys).count()
            >= len(first) - len(held_keys),
            timeout=60, what="the other hosts to run the rest",
        )  # fmt: skip

        # Its link comes back while the recovered jobs run elsewhere (AGAIN seconds).
        cut.restore()
        restored_at = time.monotonic()
        wait_until(
            lambda: "outcome(s) refused" in procs[cut.name].output(),
            timeout=AGAIN, what="the stale outcomes to be written and refused",
        )  # fmt: skip
        assert time.monotonic() - restored_at < AGAIN
        # Refused, so the jobs are still held by the hosts that recovered them.
        still = Job.objects.filter(id__in=list(held))
        assert still.exists()
        assert not still.filter(locked_by__in=list(cut_workers)).exists()
        # Its workers rejoin: the same processes, registered again, beating.
        wait_until(
            lambda: workers_on(cut.name) == cut_workers,
            timeout=30, what="the cut host's workers to register again",
        )  # fmt: skip
        second = [f"b{n}" for n in range(120)]
        later_many(process_jobs.on_host, [[key, 0.1] for key in second])
        wait_until(lambda: not Job.objects.exists(), timeout=90, what="every job to end")

    runs = Counter(Execution.objects.values_list("key", flat=True))
    assert set(runs) == set(first) | set(second), "a job was lost"
    twice = {key for key, n in runs.items() if n > 1}
    assert twice <= held_keys, f"ran twice although not held by the cut host: {twice}"
    assert max(runs.values()) <= 2
    # Each held job was run again by another host.
    elsewhere = Execution.objects.filter(key__in=held_keys).exclude(pid__in=cut_workers.values())
    assert set(elsewhere.values_list("key", flat=True)) == held_keys
    # The cut host took new jobs after it came back.
    assert Execution.objects.filter(key__in=second, pid__in=cut_workers.values()).exists()
    for name in others:
        assert "outcome(s) refused" not in procs[name].output()
