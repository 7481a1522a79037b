"""Runners give up on a job past its timeout (embedded mode): its slot is freed at once,
its end is never reported, and a thread takes the stuck thread's place."""

import asyncio
import threading
from types import SimpleNamespace

from django_jobs.runtime import runners
from tests.conftest import wait_until


def call(job_id: int):
    return SimpleNamespace(claimed=SimpleNamespace(id=job_id))


def test_a_thread_runner_replaces_an_abandoned_thread(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(runners, "run_sync", lambda c: release.wait(10) and None)
    ended = []
    pool = runners.ThreadRunner(1, lambda c, error: ended.append(c.claimed.id))
    stuck = call(1)
    pool.submit(stuck)
    wait_until(lambda: 1 in pool.current)
    old = pool.threads[0]

    pool.abandon(stuck)
    assert pool.running == 0 and pool.threads != [old] and len(pool.threads) == 1
    monkeypatch.setattr(runners, "run_sync", lambda c: None)
    pool.submit(call(2))  # the fresh thread runs the next job while the old one is stuck
    wait_until(lambda: ended == [2])
    release.set()
    old.join(5)
    assert not old.is_alive() and ended == [2] and pool.running == 0  # 1 went unheard
    pool.shutdown()


def test_abandoning_a_job_that_already_ended_changes_nothing(monkeypatch):
    monkeypatch.setattr(runners, "run_sync", lambda c: None)
    ended = []
    pool = runners.ThreadRunner(1, lambda c, error: ended.append(c.claimed.id))
    done = call(3)
    pool.submit(done)
    wait_until(lambda: ended == [3])
    pool.abandon(done)
    assert pool.running == 0 and len(pool.threads) == 1 and not pool.abandoned
    pool.shutdown()


def test_an_async_runner_cancels_an_abandoned_task(monkeypatch):
    started, cancelled = threading.Event(), threading.Event()

    async def forever(c):
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    monkeypatch.setattr(runners, "run_async", forever)
    ended = []
    loop = runners.AsyncRunner(2, lambda calls: ended.extend(c.claimed.id for c, _ in calls))
    stuck = call(4)
    loop.submit(stuck)
    loop.send()
    assert loop.running == 1
    assert started.wait(5)
    loop.abandon(stuck)
    assert loop.running == 0
    assert cancelled.wait(5)
    wait_until(lambda: not loop.abandoned)
    assert ended == [] and loop.running == 0
    loop.shutdown()


def test_an_async_job_abandoned_before_the_loop_started_it_never_starts(monkeypatch):
    ran = []

    async def record(c):
        ran.append(c.claimed.id)

    monkeypatch.setattr(runners, "run_async", record)
    ended = []
    loop = runners.AsyncRunner(2, lambda calls: ended.extend(c.claimed.id for c, _ in calls))
    given_up, kept = call(5), call(6)
    loop.submit(given_up)
    loop.submit(kept)
    loop.abandon(given_up)
    assert loop.running == 1
    loop.send()
    wait_until(lambda: ended == [6])
    assert ran == [6] and not loop.abandoned and loop.running == 0 and not loop.tasks
    loop.shutdown()


def test_async_jobs_cross_threads_in_batches(monkeypatch):
    """A batch of jobs reaches the loop in one crossing, and the jobs that end in one pass
    of the loop are reported in one call; a job that raises is reported like the others."""
    gate = asyncio.Event()

    async def wait_for_gate(c):
        await gate.wait()
        if c.claimed.id == 3:
            raise RuntimeError("boom")

    monkeypatch.setattr(runners, "run_async", wait_for_gate)
    reports = []
    loop = runners.AsyncRunner(
        10, lambda calls: reports.append(sorted(c.claimed.id for c, _ in calls))
    )
    for job_id in range(1, 6):
        loop.submit(call(job_id))
    loop.send()
    assert loop.sends == 1 and loop.running == 5
    wait_until(
        lambda: (
            len(loop.tasks) == 5 and all(isinstance(t, asyncio.Task) for t in loop.tasks.values())
        )
    )
    loop.loop.call_soon_threadsafe(gate.set)
    wait_until(lambda: loop.running == 0)
    assert reports == [[1, 2, 3, 4, 5]] and loop.reports == 1 and not loop.tasks
    loop.shutdown()
