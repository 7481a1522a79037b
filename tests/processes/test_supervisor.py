"""The supervisor replaces dead, hung and recycled workers; their jobs are recovered."""

import os
import signal
import time

import pytest

from django_jobs import later, later_many
from django_jobs.models import Job, Worker
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import gone, group, live_workers, no_core_dumps
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

#: HEARTBEAT_TIMEOUT of these tests, in seconds.
T = 3
KEEP = {"DELETE_SUCCESSFUL_JOBS": False}  # keep rows to read last_error after success


def ran(key: str) -> bool:
    return Execution.objects.filter(key=key).exists()


def row_of(job) -> Job:
    job.refresh_from_db()
    return job


def succeeded(job) -> Job:
    """The job's row once its success is recorded (the job's own write comes first)."""
    wait_until(lambda: row_of(job).status == "succeeded", what="the success to be recorded")
    return job


def test_a_killed_worker_is_replaced_and_its_job_recovered(jobs_cmd):
    job = later(jobs.slow, ["killed"], {"seconds": 1})
    supervisor = jobs_cmd("jobs", "work", workers=[group(**KEEP)], heartbeat=T)
    wait_until(lambda: ran("killed:start"), what="the job to start")
    [(identity, pid)] = live_workers(1).items()
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: ran("killed"), timeout=2 * T, what="the job to run again and succeed")
    assert time.monotonic() - killed < 2 * T
    job = succeeded(job)
    assert job.attempts == 2
    assert f"worker {identity} died while running this job (killed by SIGKILL)" in job.last_error
    [new_pid] = live_workers(1).values()
    assert new_pid != pid and Execution.objects.get(key="killed").pid == new_pid
    assert "died after" in supervisor.output()


@pytest.mark.parametrize(("how", "detail"), [("exit", "exit code 1"), ("abort", "SIGABRT")])
def test_a_job_that_crashes_its_process_runs_again_in_a_fresh_worker(jobs_cmd, how, detail):
    limits = no_core_dumps()
    try:
        job = later(jobs.crash, [how], {"how": how})
        jobs_cmd("jobs", "work", workers=[group(**KEEP)], heartbeat=T)
        # No time bound is promised here (the supervisor records the death at once, then the
        # retry's back-off and a fresh process's start): a generous deadline for a loaded box.
        wait_until(lambda: ran(how), timeout=30, what="the job to run again and succeed")
    finally:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, limits)
    crashed = Execution.objects.get(key=f"{how}:crashed").pid
    assert Execution.objects.get(key=how).pid != crashed
    job = succeeded(job)
    assert job.attempts == 2
    assert "died while running this job" in job.last_error and detail in job.last_error


def test_a_worker_without_heartbeat_is_killed_and_its_job_recovered(jobs_cmd):
    """A stopped process stands for one hung in C code: no thread of it runs."""
    job = later(process_jobs.freeze, ["hung"])
    supervisor = jobs_cmd("jobs", "work", workers=[group(**KEEP)], heartbeat=T)
    wait_until(lambda: ran("hung:frozen"), what="the worker to freeze")
    frozen_at = time.monotonic()
    frozen_pid = Execution.objects.get(key="hung:frozen").pid
    wait_until(
        lambda: "died" in row_of(job).last_error, timeout=2 * T, what="the job to be recovered"
    )
    assert time.monotonic() - frozen_at < 2 * T
    assert "no heartbeat for 3 s; killed by the supervisor" in job.last_error
    wait_until(lambda: ran("hung"), what="the job to run again")
    assert gone([frozen_pid])
    assert "has not beaten for" in supervisor.output()


def test_a_live_worker_recovers_the_job_of_a_dead_one_within_two_heartbeat_timeouts(jobs_cmd):
    """No supervisor on that host (it died with it): the lifeline of another worker."""
    job = later(jobs.slow, ["orphan"], {"seconds": 0.5})
    for worker_id in ("1", "2"):
        jobs_cmd("jobs", "worker", "--id", worker_id, workers=[group(**KEEP)], heartbeat=T)
    wait_until(lambda: ran("orphan:start"), what="the job to start")
    pid = Execution.objects.get(key="orphan:start").pid
    identity = Worker.objects.get(pid=pid).identity
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_until(
        lambda: "died" in row_of(job).last_error, timeout=2 * T, what="the job to be recovered"
    )
    assert time.monotonic() - killed < 2 * T
    assert job.last_error == f"worker {identity} died while running this job"
    wait_until(lambda: ran("orphan"), what="the job to run again")
    assert succeeded(job).attempts == 2
    wait_until(lambda: not Worker.objects.filter(pid=pid).exists(), what="the dead row to go")


def test_a_job_past_its_timeout_is_killed_retried_then_failed_while_others_run(jobs_cmd):
    job = later(jobs.hang, ["hang"])  # timeout=2, max_attempts=2
    later_many(jobs.record, [[f"other-{n}", 0.25] for n in range(8)])
    supervisor = jobs_cmd("jobs", "work", workers=[group(2)], heartbeat=T)
    first = live_workers(2)
    wait_until(lambda: row_of(job).failed_at is not None, timeout=20, what="the job to fail")
    assert job.attempts == 2 and job.last_error == "JobTimeout: timed out after 2 s"
    starts = list(Execution.objects.filter(key="hang:start").order_by("id"))
    assert len(starts) == 2
    others = Execution.objects.filter(key__startswith="other-")
    assert others.count() == 8
    # Other jobs ran while the first attempt hung, on the other worker.
    assert starts[0].pid not in set(others.values_list("pid", flat=True))
    assert others.filter(id__gt=starts[0].id, id__lt=starts[1].id).exists()
    hung_pids = {start.pid for start in starts}
    assert "stopped after a job's timeout" in supervisor.output()
    # Each timed-out worker was replaced by a fresh process, in the same slot, with an
    # identity of its own.
    fresh = live_workers(2)
    slots = {identity.rsplit("/", 1)[0] for identity in fresh}
    assert slots == {identity.rsplit("/", 1)[0] for identity in first}
    assert not hung_pids & set(fresh.values())


@pytest.mark.parametrize(
    ("limit", "jobs_per_process"), [({"MAX_JOBS": 3}, 3), ({"MAX_MEMORY_MB": 1}, 1)]
)
def test_a_worker_is_recycled_after_max_jobs_or_max_memory(jobs_cmd, limit, jobs_per_process):
    total = 3 * jobs_per_process + 1
    later_many(jobs.record, [[f"r{n}"] for n in range(total)])
    supervisor = jobs_cmd("jobs", "work", workers=[group(**limit)])
    wait_until(
        lambda: Execution.objects.filter(key__startswith="r").count() == total,
        what="every job to run",
    )
    per_pid: dict[int, int] = {}
    for pid in Execution.objects.values_list("pid", flat=True):
        per_pid[pid] = per_pid.get(pid, 0) + 1
    assert len(per_pid) == 4 and max(per_pid.values()) == jobs_per_process
    assert "exited to be recycled" in supervisor.output()
    assert Execution.objects.count() == total  # none ran twice


def test_a_worker_that_keeps_dying_is_restarted_with_back_off(jobs_cmd):
    """Three jobs each kill their worker the first time they run: the restarts back off."""
    keys = [f"c{n}" for n in range(3)]
    later_many(jobs.crash, [[key] for key in keys])
    supervisor = jobs_cmd("jobs", "work", workers=[group(THREADS=1, BATCH_SIZE=1)])
    wait_until(
        lambda: "starting a new one in 2 s" in supervisor.output(), what="a growing back-off"
    )
    assert "starting a new one in 1 s" in supervisor.output()
    assert Execution.objects.filter(key__endswith=":crashed").count() == 3
    # Then a worker stays up and runs each of them again, to its end.
    wait_until(
        lambda: Execution.objects.filter(key__in=keys).count() == 3,
        timeout=60, what="the crashed jobs to run again",
    )  # fmt: skip
