"""Rate limits with real worker processes, on each engine.

Workers keep succeeded rows here (``DELETE_SUCCESSFUL_JOBS: False``), so each job's
``started_at``, which its worker records when it starts the job, can be read back; every
start is also a grant in the RateGrant table. The grants, which are what the database
enforces, never put N + 1 in a window of the period and the margin: asserted exactly,
whatever the load. How closely the recorded starts follow them, and how close the total
time comes to the ideal, depend on how promptly a loaded machine runs the workers: these
tests only check that the jobs were paced (not faster than the budget, not far slower);
``bench/rate_limits.py`` measures both, with figures in docs/performance.md. The workers
are running when the jobs arrive, as in production.
"""

from __future__ import annotations

import json
import signal
from datetime import timedelta

import pytest
from django.test import override_settings

from django_jobs import clock, later_many
from django_jobs.models import Job, RateGrant
from django_jobs.rates import margin
from django_jobs.runtime.status import waiting_lines
from tests.conftest import wait_until
from tests.processes.conftest import live_workers
from tests.testapp import rate_jobs
from tests.testapp.models import Execution

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

WORKERS = 4
GROUP = {
    "QUEUE": "*", "COUNT": 1, "MAX_ATTEMPTS": 3, "SLEEP_DELAY": 0.5, "THREADS": 5,
    "DELETE_SUCCESSFUL_JOBS": False,
}  # fmt: skip
#: How much sooner than the ideal schedule the last start may come: the grants are
#: stamped up to half the margin before their claims.
EARLY = 0.1


def paced(span: float, ideal: float) -> bool:
    """Not faster than the budget allows, and not far slower: a claim that re-granted the
    jobs that came due late would stretch 10 s into 20 (the bench measures the rest)."""
    return ideal - EARLY <= span <= 2 * ideal + 1.0


def start_workers(processes, groups=(GROUP,), count=WORKERS):
    """``count`` workers of the first group, running and idle when this returns."""
    env = {"DJANGO_JOBS_WORKERS": json.dumps(list(groups))}
    workers = [
        processes("jobs", "worker", "--index", "0", "--id", str(i), env=env) for i in range(count)
    ]
    live_workers(count)
    return workers


def stop(workers):
    for worker in workers:
        worker.signal(signal.SIGTERM)
    assert [w.wait(30) for w in workers] == [0] * len(workers)


def tightest_window(times: list[float], count: int) -> float:
    """The shortest span holding count + 1 consecutive times (the budget is broken in a
    window of length P exactly when this is below P)."""
    times = sorted(times)
    return min(b - a for a, b in zip(times, times[count:], strict=False))


def grant_times(key: str) -> list[float]:
    return [at.timestamp() for at in RateGrant.objects.filter(key=key).values_list("at", flat=True)]


def start_times(**where) -> list[float]:
    """When the workers started the jobs (``Job.started_at``), sorted."""
    rows = Job.objects.filter(**where).values_list("started_at", "finished_at")
    assert all(finished is not None for _, finished in rows)
    return sorted(started.timestamp() for started, _ in rows)


def done(count: int, **where):
    return lambda: Job.objects.filter(finished_at__isnull=False, **where).count() == count


def test_twenty_per_second_for_ten_seconds_never_exceeds_the_budget(processes):
    workers = start_workers(processes)
    later_many(rate_jobs.paced, [[n] for n in range(200)])
    wait_until(done(200), timeout=90, what="200 rate-limited jobs to run")
    stop(workers)
    starts = start_times()
    assert len(starts) == 200 and Execution.objects.count() == 200
    # The grants: no 21 in any 1 s (+ margin) window; the starts: within the tolerance.
    # A job given back unstarted (held too long behind others) keeps its grant: more
    # grants than starts is the budget spent, never exceeded.
    grants = grant_times(rate_jobs.paced.name)
    assert len(grants) >= 200
    assert tightest_window(grants, 20) >= 1.0 + margin(1.0) - 1e-3
    # Ten windows of 20, the first at once: the ideal span of the starts is 9 s.
    assert paced(starts[-1] - starts[0], 9.0), starts[-1] - starts[0]
    # Several workers shared the budget.
    assert len(set(Execution.objects.values_list("pid", flat=True))) >= 2


def test_a_key_per_account_paces_each_account_on_its_own(processes):
    calls = [[account, n] for n in range(10) for account in ("a", "b", "c")]
    workers = start_workers(processes, count=2)
    later_many(rate_jobs.per_account, calls)
    wait_until(done(30), timeout=60, what="30 jobs to run")
    stop(workers)
    name = rate_jobs.per_account.name
    by_account = {account: start_times(rate_key=f"{name}:{account}") for account in "abc"}
    for account, starts in by_account.items():
        assert len(starts) == 10
        grants = grant_times(f"{name}:{account}")
        assert tightest_window(grants, 5) >= 1.0 + margin(1.0) - 1e-3, account
        # 10 jobs at 5/s: the second five wait a second for the first five.
        assert paced(starts[-1] - starts[0], 1.0), account
    # The accounts ran side by side: all three started their first five at once.
    firsts = [starts[0] for starts in by_account.values()]
    assert max(firsts) - min(firsts) < 0.9


def test_a_queue_rate_limit_applies_to_every_job_of_the_queue(processes):
    groups = [{**GROUP, "QUEUE": ["email"], "RATE_LIMIT": "10/s"}, {**GROUP, "QUEUE": "*"}]
    with override_settings(JOBS={"QUEUES": ["default", "email", "slow"], "WORKERS": groups}):
        workers = start_workers(processes, groups=groups, count=2)
        rows = later_many(rate_jobs.mailed, [[n] for n in range(25)])
        assert {row.rate_key for row in rows} == {"queue:email"}
        assert {row.rate_limit for row in rows} == {"10/s"}
        wait_until(
            lambda: RateGrant.objects.filter(job_id__isnull=False).exists(),
            timeout=30,
            what="rate-limited jobs to wait for their moment",
        )
        lines = waiting_lines()
        assert "Rate limited" in lines and "rate limit 10/s for key queue:email" in lines
        # A job whose moment is a second away still waits for it: the job page says so.
        soon = clock.now() + timedelta(seconds=1)
        job_id = (
            RateGrant.objects.filter(job_id__isnull=False, at__gt=soon)
            .values_list("job_id", flat=True)
            .first()
        )
        assert job_id is not None
        assert Job.objects.get(pk=job_id).waiting_reason.startswith("rate limited until ")
        wait_until(done(25), timeout=60, what="25 jobs to run")
        stop(workers)
    starts = start_times()
    assert tightest_window(grant_times("queue:email"), 10) >= 1.0 + margin(1.0) - 1e-3
    assert paced(starts[-1] - starts[0], 2.0)
