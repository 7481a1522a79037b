"""Embedded mode under real servers: runserver, gunicorn (sync and gthread, 2 workers) and
uvicorn, each with ``JOBS["EMBEDDED"]`` on, on the test database.

Jobs are enqueued by HTTP requests and record their start and end times and pid in the
Execution table; every server is killed with its process group at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from django_jobs.models import Job, Worker
from tests.conftest import ROOT, wait_until, worker_env
from tests.testapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS = "tests.processes.embedded.settings"
JOBS = "tests.processes.embedded.jobs"
THREADS = 3
#: Marks its start, then sleeps: running when its server is killed (max_attempts=2).
LONG = "tests.processes.app.jobs.long_one"


def _default_sigint() -> None:
    """In the server's child process: Ctrl-C as a terminal gives it. A suite started in
    the background by a non-interactive shell inherits SIGINT ignored, and Python then
    installs no KeyboardInterrupt handler: runserver would never stop (seen in CI)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One web server process (in a session of its own) and the URL it answers on."""

    def __init__(
        self, kind: str, embedded: dict, heartbeat: float, env: dict | None = None
    ) -> None:
        from django.db import connections

        connections.close_all()  # SQLite: hold no lock the server needs
        self.kind = kind
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"embedded_{kind}_", delete=False)
        bind = f"127.0.0.1:{self.port}"
        python = [sys.executable, "-m"]
        argv = {
            "runserver": [*python, "django", "runserver", "--noreload", bind],
            "gunicorn-sync": [*python, "gunicorn", "tests.processes.embedded.wsgi", "-w", "2",
                              "-b", bind],
            "gunicorn-gthread": [*python, "gunicorn", "tests.processes.embedded.wsgi", "-w",
                                 "2", "-k", "gthread", "--threads", "4", "-b", bind],
            "uvicorn": [*python, "uvicorn", "tests.processes.embedded.asgi:application",
                        "--port", str(self.port)],
        }[kind]  # fmt: skip
        env = worker_env(
            {
                "DJANGO_SETTINGS_MODULE": SETTINGS,
                "DJANGO_JOBS_EMBEDDED": json.dumps({"ENABLED": True, **embedded}),
                "DJANGO_JOBS_HEARTBEAT_TIMEOUT": str(heartbeat),
                **(env or {}),
            }
        )
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_default_sigint,
        )  # fmt: skip
        wait_until(self._answers, timeout=30, what=f"{kind} answering")

    def _answers(self) -> bool:
        if self.popen.poll() is not None:
            raise AssertionError(f"the server exited:\n{self.output()[-3000:]}")
        try:
            return self.get("/ping/") == b"pong"
        except OSError:
            return False

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.read()

    def enqueue(self, name: str, count: int = 1, start: int = 0, **kwargs) -> list[int]:
        query = {"count": count, "start": start, "prefix": name, "kwargs": json.dumps(kwargs)}
        return json.loads(self.get(f"/enqueue/{name}/?{urllib.parse.urlencode(query)}"))["ids"]

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 30) -> int:
        """Stop the server as it is meant to be stopped; its exit status. runserver ends on
        Ctrl-C (SIGINT): a SIGTERM kills it without running exit handlers."""
        self.signal_group(signal.SIGINT if self.kind == "runserver" else signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running:\n{self.output()[-3000:]}") from None

    def kill(self) -> None:
        self.signal_group(signal.SIGKILL)
        self.popen.wait(10)


@pytest.fixture
def servers(request):
    started: list[Server] = []

    def start(kind: str, heartbeat: float = 60, env: dict | None = None, **embedded) -> Server:
        server = Server(kind, {"THREADS": THREADS, **embedded}, heartbeat, env)
        started.append(server)
        return server

    yield start
    failed = getattr(request.node, "jobs_call_failed", False)
    for server in started:
        server.kill()
        if failed:
            print(f"--- {server.popen.args} ---\n{server.output()[-5000:]}")
        server.log.close()
        os.unlink(server.log.name)


def most_at_once(rows) -> dict[int, int]:
    """pid → the most jobs that process ran at the same time."""
    edges = defaultdict(list)
    for pid, started, ended in rows:
        edges[pid] += [(started, 1), (ended, -1)]
    peaks = {}
    for pid, points in edges.items():
        now = peak = 0
        for _, step in sorted(points, key=lambda p: (p[0], p[1])):
            now += step
            peak = max(peak, now)
        peaks[pid] = peak
    return peaks


@pytest.mark.parametrize("kind", ["runserver", "gunicorn-sync", "gunicorn-gthread", "uvicorn"])
def test_requests_enqueue_200_jobs_each_run_once_at_most_threads_at_a_time(servers, kind):
    server = servers(kind)
    for start in range(0, 200, 20):
        server.enqueue("probe", count=20, start=start)

    # Every one succeeded (and its row was deleted); each recorded its run once.
    wait_until(lambda: not Job.objects.exists(), timeout=90, what="200 jobs performed")
    keys = Counter(Execution.objects.values_list("key", flat=True))
    assert keys == {f"probe-{i}": 1 for i in range(200)}
    rows = Execution.objects.values_list("pid", "started", "ended")
    assert server.popen.pid not in {pid for pid, _, _ in rows} or kind in ("runserver", "uvicorn")
    peaks = most_at_once(rows)
    assert max(peaks.values()) <= THREADS, peaks

    # A clean stop: each process's worker row is gone (deregistered at exit).
    assert Worker.objects.filter(identity__startswith="django-jobs-embedded").exists()
    # uvicorn raises the SIGTERM it handled again once it has shut down
    assert server.stop() == (-signal.SIGTERM if kind == "uvicorn" else 0)
    assert not Worker.objects.exists()


def test_kill_9_mid_job_then_restart_completes_every_job(servers):
    server = servers("gunicorn-sync", heartbeat=2, THREADS=2)
    server.enqueue(LONG, count=6, seconds=1.5)
    wait_until(
        lambda: Execution.objects.filter(key__endswith=":start").count() >= 2,
        what="two jobs running",
    )
    server.kill()
    assert Job.objects.filter(locked_by__isnull=False).exists()  # held by the dead ones

    servers("gunicorn-sync", heartbeat=2, THREADS=2)  # its first request starts a worker
    wait_until(lambda: not Job.objects.exists(), timeout=45, what="every job done")
    ends = Execution.objects.exclude(key__endswith=":start")
    finished = Counter(ends.values_list("key", flat=True))
    assert finished == {f"{LONG}-{i}": 1 for i in range(6)}


def test_a_raising_job_frees_its_slot_and_is_recorded(servers):
    server = servers("runserver", THREADS=1)
    server.enqueue("fails", count=2)
    server.enqueue("probe", count=2)
    wait_until(lambda: Execution.objects.filter(key__startswith="probe").count() == 2)
    failed = wait_until(
        lambda: list(Job.objects.filter(failed_at__isnull=False).order_by("id")),
        what="the failures recorded",
    )
    assert len(failed) == 2
    assert all("ValueError: embedded failure fails-" in job.last_error for job in failed)
    output = server.output()
    assert f"[jobs] [{JOBS}.fails] failed" in output
    assert "Traceback" in output and "embedded failure fails-0" in output


def test_a_job_past_its_timeout_is_abandoned_and_its_thread_replaced(servers):
    server = servers("uvicorn", THREADS=1)
    server.enqueue("hangs", count=1, seconds=8)
    wait_until(lambda: Execution.objects.filter(key="hangs-0:start").exists())
    server.enqueue("probe", count=2)

    # The one slot is free again after the 1 s timeout: the probes run while the
    # abandoned thread still sleeps.
    wait_until(lambda: Execution.objects.filter(key__startswith="probe").count() == 2)
    assert not Execution.objects.filter(key="hangs-0").exists()
    hung = Job.objects.get(name=f"{JOBS}.hangs")
    assert hung.failed_at is not None
    assert hung.last_error.startswith("JobTimeout: timed out after 1 s")
    assert "is abandoned and replaced" in server.output()
    assert server.popen.poll() is None  # the web server lives on
    assert server.get("/ping/") == b"pong"


def test_a_forked_child_starts_its_own_embedded_worker():
    """os.fork() after the worker started: the child does not inherit it (its threads are
    gone) and starts its own; the parent's keeps working."""
    from django.db import connection

    if connection.vendor == "sqlite":
        # SQLite's own rule: a child must not inherit a process's open connections (their
        # locks confuse its own); servers fork before their first request, and so before
        # the embedded worker starts (docs/howto/embedded.md).
        pytest.skip("SQLite connections cannot cross a fork")
    script = ROOT / "tests" / "processes" / "embedded" / "forking.py"
    env = worker_env({"DJANGO_SETTINGS_MODULE": SETTINGS})
    from django.db import connections

    connections.close_all()
    script_run = subprocess.Popen(
        [sys.executable, str(script)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = script_run.communicate(timeout=120)
    finally:
        try:
            os.killpg(script_run.pid, signal.SIGKILL)  # the forked child too
        except ProcessLookupError:
            pass
        script_run.wait(10)
    assert script_run.returncode == 0, output
    report = json.loads(output.strip().splitlines()[-1])
    assert report["child_inherited"] is None
    slot, _, instance = report["child_identity"].rpartition("/")
    assert slot.endswith(f".{report['child_pid']}@{socket.gethostname()}") and instance
    by_key = dict(Execution.objects.values_list("key", "pid"))
    parent, child = report["parent_pid"], report["child_pid"]
    assert by_key == {"fork-parent": parent, "fork-parent-after": parent, "fork-child": child}


def test_count_cpus_starts_one_worker_process_per_cpu(jobs_cmd):
    from django_jobs.conf import cpu_count
    from tests.processes.conftest import group, live_workers

    supervisor = jobs_cmd("jobs", "work", workers=[group(count="cpus")])
    workers = live_workers(cpu_count())
    assert len(set(workers.values())) == cpu_count() == len(os.sched_getaffinity(0))
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait() == 0
