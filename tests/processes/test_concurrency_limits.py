"""Concurrency limits with four real worker processes, on each engine.

Each job writes its start and end times (``time.time()``, one host) to the Execution
table. With a limit of one per key, no two runs of a key overlap, while runs of different
keys do; a job type with a limit does not hold back an unlimited one queued behind it;
and a worker killed (SIGKILL) while it holds a slot gives the slot up through recovery.
"""

from __future__ import annotations

import json
import signal
from collections import defaultdict

import pytest

from django_jobs import later, later_many
from django_jobs.models import Job
from tests.conftest import wait_until
from tests.testapp import jobs, limit_jobs
from tests.testapp.models import Execution

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

WORKERS = 4
GROUP = {"QUEUE": "*", "COUNT": 1, "MAX_ATTEMPTS": 3, "SLEEP_DELAY": 0.5}


def start_workers(processes, count=WORKERS, heartbeat=None):
    env = {"DJANGO_JOBS_WORKERS": json.dumps([GROUP])}
    if heartbeat is not None:
        env["DJANGO_JOBS_HEARTBEAT_TIMEOUT"] = str(heartbeat)
    return [
        processes("jobs", "worker", "--index", "0", "--id", str(i), env=env) for i in range(count)
    ]


def stop(workers):
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in workers] == [0] * len(workers)


def overlaps(runs: list[tuple[float, float]]) -> int:
    """How many runs start before the previous one (in start order) ended."""
    runs = sorted(runs)
    return sum(1 for (_, end), (start, _) in zip(runs, runs[1:], strict=False) if start < end)


def test_one_per_key_never_overlaps_while_keys_run_side_by_side(processes):
    keys = [f"customer-{k}" for k in range(20)]
    later_many(limit_jobs.per_customer, [[key, n, 0.02] for n in range(10) for key in keys])
    workers = start_workers(processes)
    wait_until(lambda: not Job.objects.exists(), timeout=180, what="200 limited jobs to run")
    stop(workers)
    rows = list(Execution.objects.values_list("key", "started", "ended", "pid"))
    assert len(rows) == 200 and len({key for key, *_ in rows}) == 200
    by_key: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for key, started, ended, _ in rows:
        by_key[key.rsplit(":", 1)[0]].append((started, ended))
    assert {key: overlaps(runs) for key, runs in by_key.items()} == dict.fromkeys(keys, 0)
    # Different keys did run at the same time, in several processes.
    everything = [(started, ended) for _, started, ended, _ in rows]
    assert overlaps(everything) > 20
    assert len({pid for *_, pid in rows}) >= 2


def test_a_limited_job_type_does_not_hold_back_an_unlimited_one_behind_it(processes):
    # 30 jobs of one key take >= 3 s one after the other; 40 unlimited ones queued behind
    # them finish long before (4 workers). Slack: 2.5 s for a loaded machine.
    later_many(limit_jobs.per_customer, [["busy", n, 0.1] for n in range(30)])
    later_many(jobs.record, [[f"free-{n}"] for n in range(40)])
    workers = start_workers(processes)
    wait_until(
        lambda: Execution.objects.filter(key__startswith="free-").count() == 40,
        timeout=60,
        what="the unlimited jobs",
    )
    wait_until(lambda: not Job.objects.exists(), timeout=60, what="the limited jobs")
    stop(workers)
    free_done = max(
        Execution.objects.filter(key__startswith="free-").values_list("ended", flat=True)
    )
    busy = list(Execution.objects.filter(key__startswith="busy:").values_list("started", "ended"))
    assert overlaps(busy) == 0
    assert max(end for _, end in busy) - min(start for start, _ in busy) >= 3.0
    assert free_done < max(end for _, end in busy) - 0.5
    assert free_done - min(start for start, _ in busy) < 2.5


def test_a_worker_killed_while_holding_a_slot_gives_it_up_through_recovery(processes):
    # The first job holds the key's only slot for 60 s; its worker is killed; recovery
    # (heartbeat timeout 2 s) charges it an attempt and frees the slot, so the second
    # job runs; then the first runs again (its second attempt), never beside the second.
    first = later(limit_jobs.one_at_a_time, ["first", 60]).pk
    later(limit_jobs.one_at_a_time, ["second", 0.5])
    victim = start_workers(processes, count=1, heartbeat=2)[0]
    wait_until(lambda: Execution.objects.filter(key="first:start").exists(), what="first start")
    others = start_workers(processes, count=2, heartbeat=2)
    victim.signal(signal.SIGKILL)
    wait_until(lambda: Execution.objects.filter(key="second").exists(), timeout=60, what="second")
    wait_until(
        lambda: Execution.objects.filter(key="first:start").count() == 2,
        timeout=60,
        what="the first job's second attempt",
    )
    row = Job.objects.get(pk=first)
    assert row.attempts == 2 and "died while running this job" in row.last_error
    starts = list(Execution.objects.filter(key__endswith=":start").order_by("started"))
    assert [e.key for e in starts] == ["first:start", "second:start", "first:start"]
    second_end = Execution.objects.get(key="second").ended
    assert starts[2].started >= second_end  # the retry waited for the slot
    Job.objects.filter(pk=first).delete()  # do not wait 60 s for it
    for worker in others:
        worker.signal(signal.SIGKILL)
