"""``jobs status`` leads with what runs: live workers by host and group, then the supervisor."""

import os
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from django_jobs import clock, later
from django_jobs.models import Job, Worker
from django_jobs.runtime import daemon
from django_jobs.runtime.heartbeat import HOST
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def status() -> str:
    out = StringIO()
    call_command("jobs", "status", stdout=out)
    return out.getvalue()


def worker(identity: str, host: str, pid: int, group: int = 0, queues: str = "*", age: float = 0):
    return Worker.objects.create(
        identity=identity,
        host=host,
        pid=pid,
        group=group,
        queues=queues,
        heartbeat_at=clock.now() - timedelta(seconds=age),
    )


@pytest.fixture
def no_detached_supervisor(monkeypatch):
    # Another test run on this machine may have a detached supervisor with these settings.
    monkeypatch.setattr(daemon, "running_pid", lambda: None)


def test_live_workers_under_a_foreground_supervisor_come_first(no_detached_supervisor):
    # This test process stands in for a worker of `jobs work`: alive, fresh heartbeat.
    here = worker(f"{HOST}:*:0", HOST, os.getpid())
    worker("web-2:email:0", "web-2", 11, group=1, queues="email")
    worker("web-2:email:1", "web-2", 12, group=1, queues="email")
    worker("web-3:*:0", "web-3", 13, age=3600)  # stale: not counted as running
    job = later(jobs.record, ["busy"])
    Job.objects.filter(pk=job.pk).update(locked_at=clock.now(), locked_by=here.identity)

    text = status()
    lines = text.splitlines()
    assert lines[0] == "Running: 3 live worker(s) on 2 host(s), 1 job(s) running now"
    summary = text.split("\n\n")[0].splitlines()
    assert summary[1].split() == ["HOST", "GROUP", "QUEUES", "LIVE", "BUSY", "JOBS"]
    rows = {line.split()[0]: line.split()[-5:] for line in summary[3:]}
    assert rows == {HOST: ["0", "*", "1", "1", "1"], "web-2": ["1", "email", "2", "0", "0"]}
    assert f"{HOST} (this host)" in summary[3]
    supervisor = text.split("\n\n")[1]
    assert supervisor.startswith("Supervisor: no detached one on this host")
    assert "the 1 live worker(s) on this host run" in supervisor
    if os.getppid() != 1:
        assert f"under pid {os.getppid()}" in supervisor
    assert text.index("Running:") < text.index("Supervisor:") < text.index("Workers (4")


def test_nothing_running_says_so_first(no_detached_supervisor):
    worker("gone:*:0", "elsewhere", 99, age=3600)
    text = status()
    assert text.startswith("Running: no live worker (none has sent a heartbeat in the last")
    assert "1 registered worker row(s) are stale or dead" in text.splitlines()[0]
    assert "Supervisor: no detached one on this host (`jobs start` starts one)\n" in text


def test_a_detached_supervisor_is_named_after_the_running_workers(monkeypatch):
    monkeypatch.setattr(daemon, "running_pid", lambda: 4242)
    worker(f"{HOST}:*:0", HOST, os.getpid())
    text = status()
    assert text.startswith("Running: 1 live worker(s) on 1 host(s)")
    assert "Supervisor: running on this host (pid 4242, pid file " in text
