"""``jobs start`` / ``status`` / ``stop`` / ``restart``: a detached supervisor, end to end."""

import os
import textwrap

import pytest
from django.utils import timezone

from django_jobs import later
from django_jobs.models import Job
from tests.conftest import ROOT, wait_until
from tests.processes.app import jobs as process_jobs
from tests.processes.conftest import SETTINGS, gone, group, live_workers
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = pytest.mark.processes


def run(jobs_cmd, *args: str, code: int = 0, **env) -> str:
    proc = jobs_cmd("jobs", *args, **env)
    assert proc.wait(60) == code, proc.output()
    return proc.output()


def test_start_status_stop(jobs_cmd):
    workers = [group(2), {"QUEUE": "email", "COUNT": 1, "SLEEP_DELAY": 0.5}]
    assert "Started django_jobs" in run(jobs_cmd, "start", workers=workers)
    pidfile = jobs_cmd.pid_dir / f"{SETTINGS}.pid"
    supervisor = int(pidfile.read_text())
    workers_by_identity = live_workers(3)
    job = later(process_jobs.cooperative, ["shown"])
    wait_until(lambda: Job.objects.get(pk=job.pk).progress is not None, what="progress")
    later(jobs.send_email, ["someone@example.com"], wait=3600)

    status = run(jobs_cmd, "status", workers=workers)
    assert f"running on this host (pid {supervisor}" in status
    for identity, pid in workers_by_identity.items():
        line = next(line for line in status.splitlines() if identity in line)
        assert f" {pid} " in line and " yes " in line
    assert "Workers (3 registered)" in status
    assert f"#{job.pk} tests.processes.app.jobs.cooperative running" in status
    assert "% step " in status
    lines = status.split("Queues")[1].splitlines()
    queues = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert queues["slow"][:4] == ["0", "0", "1", "0"]  # ready, later, running, failed
    assert queues["email"][:4] == ["0", "1", "0", "0"]

    assert "already running" in run(jobs_cmd, "start", workers=workers, code=1)
    tracked = {proc.pid for proc in jobs_cmd.alive()}
    assert tracked == {supervisor, *workers_by_identity.values()}

    assert "Stopped django_jobs" in run(jobs_cmd, "stop", "--timeout", "30")
    assert gone([supervisor, *workers_by_identity.values()])
    assert not jobs_cmd.alive()
    assert not pidfile.exists()
    assert Execution.objects.filter(key="shown:stopped").exists()  # stopped gracefully
    assert "supervisor started" in jobs_cmd.log()  # LOG_FILE has the daemon's output
    assert "not running" in run(jobs_cmd, "stop")


def test_restart_runs_the_edited_code(jobs_cmd, tmp_path):
    code = tmp_path / "code"
    (code / "restart_probe").mkdir(parents=True)
    (code / "restart_probe" / "__init__.py").write_text("")

    def version(number: int) -> None:
        (code / "restart_probe" / "jobs.py").write_text(
            textwrap.dedent(f"""
                from django_jobs import job
                from tests.testapp.models import Execution

                @job
                def probe(key):
                    Execution.objects.create(key=f"{{key}}:v{number}")
            """)
        )

    def enqueue(key: str) -> None:
        Job.objects.create(name="restart_probe.jobs.probe", args=[key], run_at=timezone.now())

    env = {
        "workers": [group()],
        "DJANGO_JOBS_EXTRA_APPS": "restart_probe",
        "PYTHONPATH": os.pathsep.join([str(code), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "1",  # a same-second edit must not hit a stale .pyc
    }
    version(1)
    run(jobs_cmd, "start", **env)
    enqueue("before")
    wait_until(lambda: Execution.objects.filter(key="before:v1").exists(), what="v1 to run")
    version(2)
    output = run(jobs_cmd, "restart", "--timeout", "30", **env)
    assert "Stopped django_jobs" in output and "Started django_jobs" in output
    enqueue("after")
    wait_until(lambda: Execution.objects.filter(key="after:v2").exists(), what="v2 to run")
    run(jobs_cmd, "stop", **env)
    assert not jobs_cmd.alive()


def test_stop_force_gives_running_jobs_back_after_the_timeout(jobs_cmd):
    job = later(jobs.slow, ["forced"], {"seconds": 60})
    run(jobs_cmd, "start", workers=[group()])
    wait_until(lambda: Execution.objects.filter(key="forced:start").exists(), what="the job")
    assert "still running after 1 s" in run(jobs_cmd, "stop", "--timeout", "1", code=1)
    assert "Stopped django_jobs" in run(jobs_cmd, "stop", "--timeout", "1", "--force")
    assert not jobs_cmd.alive()
    job.refresh_from_db()
    assert (job.attempts, job.locked_by, job.last_error) == (0, None, "")


def test_stop_force_kills_a_hung_supervisor_and_worker(jobs_cmd):
    """A frozen worker cannot stop, even at once: it is killed and its job recovered."""
    job = later(process_jobs.freeze, ["stuck"])
    run(jobs_cmd, "start", workers=[group()])
    wait_until(lambda: Execution.objects.filter(key="stuck:frozen").exists(), what="freeze")
    output = run(jobs_cmd, "stop", "--timeout", "1", "--force")
    assert "killed pids" in output
    assert not jobs_cmd.alive()
    job.refresh_from_db()
    assert job.locked_by is None and job.attempts == 1
    assert "killed by jobs stop --force" in job.last_error
    assert not (jobs_cmd.pid_dir / f"{SETTINGS}.pid").exists()
