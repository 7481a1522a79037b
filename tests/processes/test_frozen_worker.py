"""A worker frozen (SIGSTOP: a VM paused, a process swapped out, a stop-the-world pause)
while it holds claimed jobs it has not started yet, with THREADS = 2 and short jobs so
that it claims beyond its free threads.

Another worker recovers those jobs once the frozen one's heartbeat is stale and runs
them. When the frozen worker wakes up (SIGCONT), its heartbeats no longer vouch for the
claims it made before the freeze: it must give those jobs back, never start them. Only
what it had started before the freeze may run twice (it was running when it froze).

Starts are noted in a file, not the database, so a start shows whatever the database
says. PostgreSQL and MariaDB: a process frozen inside an SQLite write transaction holds
the only write lock, and nothing can recover anything until it wakes up.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict

import pytest
from django.db import connection

from django_jobs import later_many
from django_jobs.models import Job
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import SETTINGS, live_workers

pytestmark = [
    pytest.mark.processes,
    pytest.mark.skipif(
        connection.vendor == "sqlite",
        reason="a process frozen in an SQLite write transaction holds the only write lock",
    ),
]

HEARTBEAT = 3.0
WORKERS = '[{"QUEUE": "*", "THREADS": 2, "BATCH_SIZE": 50, "SLEEP_DELAY": 0.5}]'


def open_transactions() -> int:
    """Transactions other than ours open in this database (a frozen worker in one would
    hold row locks that recovery waits for)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                " AND state LIKE 'idle in transaction%%'"
            )
        else:
            cursor.execute(
                "SELECT count(*) FROM information_schema.innodb_trx t"
                " JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id"
                " WHERE p.db = DATABASE() AND p.id <> CONNECTION_ID()"
            )
        return cursor.fetchone()[0]


def starts(path) -> dict[str, list[tuple[int, float]]]:
    seen: dict[str, list[tuple[int, float]]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            key, pid, at, *_ = line.split()
            seen[key].append((int(pid), float(at)))
    return seen


def test_a_frozen_worker_never_starts_claims_made_before_the_freeze(processes, tmp_path):
    log = tmp_path / "starts.log"
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DJANGO_JOBS_WORKERS": WORKERS,
        "DJANGO_JOBS_HEARTBEAT_TIMEOUT": str(HEARTBEAT),
        "DJANGO_JOBS_START_LOG": str(log),
    }
    frozen = processes("jobs", "worker", "--index", "0", "--id", "0", env=env)
    identity = next(iter(live_workers(1)))
    keys = [f"k{n}" for n in range(2000)]
    later_many(process_jobs.noted, [[key] for key in keys])

    # Freeze it at a moment it holds more jobs than it runs, outside any transaction.
    for _attempt in range(200):
        wait_until(
            lambda: Job.objects.filter(locked_by=identity).count() > 3,
            interval=0.002, what="the worker to claim beyond its two threads",
        )  # fmt: skip
        os.kill(frozen.pid, signal.SIGSTOP)
        frozen_at = time.time()
        time.sleep(0.05)
        held = dict(Job.objects.filter(locked_by=identity).values_list("id", "args"))
        if len(held) > 2 and not open_transactions():
            break
        os.kill(frozen.pid, signal.SIGCONT)
        time.sleep(0.02)
    else:
        pytest.fail("never froze the worker holding unstarted jobs outside a transaction")

    # Another worker recovers what it held once its heartbeat is stale, and runs it (what
    # had started before the freeze after a back-off, as the attempt it was).
    processes("jobs", "worker", "--index", "0", "--id", "1", env=env)
    wait_until(
        lambda: not Job.objects.filter(id__in=held, locked_by=identity).exists(),
        timeout=4 * HEARTBEAT, interval=0.05, what="the held jobs to be recovered",
    )  # fmt: skip
    held_keys = {args[0] for args in held.values()}
    wait_until(
        lambda: all(
            any(pid != frozen.pid for pid, _ in starts(log).get(key, [])) for key in held_keys
        ),
        timeout=90, interval=0.1, what="the held jobs to run on the other worker",
    )  # fmt: skip
    woken_at = time.time()
    os.kill(frozen.pid, signal.SIGCONT)
    # It runs on: it beats again and takes new claims (the rest of the queue and these).
    more = [f"m{n}" for n in range(300)]
    later_many(process_jobs.noted, [[key] for key in more])
    wait_until(lambda: not Job.objects.exists(), timeout=120, what="every job to end")
    wait_until(
        lambda: any(pid == frozen.pid and at > woken_at for runs in starts(log).values()
                    for pid, at in runs),
        timeout=30, what="the woken worker to start new jobs",
    )  # fmt: skip

    seen = starts(log)
    assert set(seen) == set(keys) | set(more), "a job never started"
    twice = {key: runs for key, runs in seen.items() if len(runs) > 1}
    # Twice only for what the frozen worker had started before it froze.
    for key, runs in twice.items():
        first_pid, first_at = min(runs, key=lambda run: run[1])
        assert first_pid == frozen.pid and first_at <= frozen_at, (key, runs, frozen_at)
        assert len(runs) == 2, (key, runs)
    # Nothing it had claimed before the freeze started after it woke up.
    late = {
        key: runs for key, runs in seen.items()
        if any(pid == frozen.pid and at >= woken_at for pid, at in runs) and len(runs) > 1
    }  # fmt: skip
    assert not late, f"started after waking up although run elsewhere: {late}"
