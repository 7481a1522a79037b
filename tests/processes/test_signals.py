"""Signals: the first stops gracefully, the second at once; alone and under a supervisor."""

import signal
import time

import pytest

from django_jobs import later
from django_jobs.models import Job, Worker
from tests.conftest import wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import gone, group, live_workers
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes

COMMANDS = {
    "worker": ("jobs", "worker", "--index", "0", "--id", "1"),
    "work": ("jobs", "work"),
}


def stop_at_once(proc) -> float:
    """Two signals; the time of the second."""
    proc.signal(signal.SIGINT)
    # Signals sent back to back may merge into one: send the second once the worker
    # has acted on the first.
    first = "stopping after running jobs finish"
    wait_until(lambda: first in proc.output(), what="the first signal to be handled")
    sent = time.monotonic()
    proc.signal(signal.SIGINT)
    return sent


def started(key: str, count: int = 1) -> bool:
    return Execution.objects.filter(key=f"{key}:start").count() >= count


@pytest.mark.parametrize("command", COMMANDS)
def test_first_signal_lets_the_running_job_finish_then_exits_0(jobs_cmd, command):
    later(jobs.slow, ["graceful"], {"seconds": 2})
    proc = jobs_cmd(*COMMANDS[command], workers=[group()])
    wait_until(lambda: started("graceful"), what="the 2 s job to start")
    signalled = time.time()
    proc.signal(signal.SIGINT)
    assert proc.wait(20) == 0
    done = Execution.objects.get(key="graceful")
    assert done.ended > signalled  # it ran to its end after the signal
    assert not Job.objects.exists()  # recorded as succeeded (and deleted)
    assert not Worker.objects.exists()  # deregistered
    assert "stopping after running jobs finish" in proc.output()
    assert not jobs_cmd.alive()


@pytest.mark.parametrize(
    ("command", "threads"), [("worker", 1), ("work", 1), ("worker", 2)], ids=str
)
def test_second_signal_stops_at_once_and_gives_the_job_back_unspent(jobs_cmd, command, threads):
    job = later(jobs.slow, ["immediate"], {"seconds": 60})
    proc = jobs_cmd(*COMMANDS[command], workers=[group(THREADS=threads)])
    wait_until(lambda: started("immediate"), what="the 60 s job to start")
    sent = stop_at_once(proc)
    assert proc.wait(5) == 0
    assert time.monotonic() - sent < 5
    assert not jobs_cmd.alive()
    job.refresh_from_db()
    assert (job.attempts, job.last_error, job.locked_by, job.failed_at) == (0, "", None, None)
    assert not Execution.objects.filter(key="immediate").exists()

    again = jobs_cmd(*COMMANDS["worker"], workers=[group()])
    wait_until(lambda: started("immediate", 2), what="the job to run again")
    job.refresh_from_db()
    assert (job.attempts, job.last_error) == (1, "")
    stop_at_once(again)
    assert again.wait(5) == 0


def test_should_stop_turns_true_on_a_graceful_stop_and_progress_is_stored(jobs_cmd):
    job = later(process_jobs.cooperative, ["context"])
    proc = jobs_cmd(*COMMANDS["work"], workers=[group()])

    def progress():
        job.refresh_from_db()
        return job.progress is not None and job.progress_message.startswith("step")

    wait_until(progress, what="progress on the job's row")
    assert 0 < job.progress < 100
    sent = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert time.monotonic() - sent < 10  # the job returned early instead of running 60 s
    assert Execution.objects.filter(key="context:stopped").exists()
    assert not Job.objects.exists()


def test_workers_stop_by_themselves_when_their_supervisor_is_killed(jobs_cmd):
    supervisor = jobs_cmd(*COMMANDS["work"], workers=[group(2)])
    pids = list(live_workers(2).values())
    assert {proc.pid for proc in jobs_cmd.alive()} == {supervisor.pid, *pids}
    supervisor.signal(signal.SIGKILL)
    wait_until(lambda: gone(pids), timeout=10, what="the orphaned workers to stop")
    assert not Worker.objects.exists()  # they stopped gracefully: deregistered
    assert "its supervisor" in supervisor.output()
