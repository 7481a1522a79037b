"""Fixtures for worker runtime tests: supervisors, daemons and the workers they spawn.

Workers started by a supervisor live in sessions of their own, out of reach of the
``processes`` fixture's process-group kill, and a detached supervisor is nobody's child.
A watcher thread therefore writes down, every 50 ms, each process the test started, every
descendant of those, and the supervisor of the test's pid file (their environment cannot
mark them: setproctitle overwrites what /proc shows of it). At teardown, whatever of that
is still running is killed.
"""

from __future__ import annotations

import json
import signal
import threading

import psutil
import pytest

from django_jobs.models import Worker
from tests.conftest import wait_until

SETTINGS = "tests.processes.settings"


class Jobs:
    """Starts ``manage.py jobs …`` with the process-test settings; tracks what runs."""

    def __init__(self, processes, tmp_path) -> None:
        self.processes = processes
        self.pid_dir = tmp_path / "pids"
        self.log_file = tmp_path / "jobs.log"
        self.started = []
        #: pid → creation time of every process seen, so a recycled pid is never mistaken
        self.seen: dict[int, float] = {}
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()

    def _watch(self) -> None:
        while not self.done.wait(0.05):
            self.harvest()

    def _note(self, proc: psutil.Process) -> None:
        for each in [proc, *proc.children(recursive=True)]:
            try:
                self.seen.setdefault(each.pid, each.create_time())
            except psutil.NoSuchProcess:
                continue

    def harvest(self) -> None:
        with self.lock:
            roots = [pid for pid in self.seen if self._same(pid)]
            try:
                daemon = int((self.pid_dir / f"{SETTINGS}.pid").read_text())
                roots.append(daemon)
            except (OSError, ValueError):
                pass
            for pid in roots:
                try:
                    proc = psutil.Process(pid)
                    if pid in self.seen or "jobs" in " ".join(proc.cmdline()):
                        self._note(proc)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue

    def _same(self, pid: int) -> bool:
        try:
            proc = psutil.Process(pid)
            return proc.create_time() == self.seen[pid] and proc.status() != "zombie"
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def env(self, workers=None, heartbeat=None, **extra: str) -> dict[str, str]:
        env = {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DJANGO_JOBS_PID_DIR": str(self.pid_dir),
            "DJANGO_JOBS_LOG_FILE": str(self.log_file),
        }
        if workers is not None:
            env["DJANGO_JOBS_WORKERS"] = json.dumps(workers)
        if heartbeat is not None:
            env["DJANGO_JOBS_HEARTBEAT_TIMEOUT"] = str(heartbeat)
        env.update(extra)
        return env

    def __call__(self, *args: str, workers=None, heartbeat=None, prefix=(), **extra: str):
        proc = self.processes(*args, env=self.env(workers, heartbeat, **extra), prefix=prefix)
        self.started.append(proc)
        with self.lock:
            try:
                self.seen[proc.pid] = psutil.Process(proc.pid).create_time()
            except psutil.NoSuchProcess:
                pass
        return proc

    def alive(self) -> list[psutil.Process]:
        """Every process this test started, and their descendants, still running."""
        self.harvest()
        with self.lock:
            return [psutil.Process(pid) for pid in list(self.seen) if self._same(pid)]

    def stop_watching(self) -> None:
        self.done.set()
        self.watcher.join()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.jobs_call_failed = report.failed
    return report


@pytest.fixture
def jobs_cmd(request, processes, tmp_path):
    jobs = Jobs(processes, tmp_path)
    yield jobs
    jobs.stop_watching()
    if getattr(request.node, "jobs_call_failed", False):
        for proc in jobs.started:
            print(f"--- output of {' '.join(proc.args)} (pid {proc.pid}) ---\n{proc.output()}")
        print(f"--- {jobs.log_file} ---\n{jobs.log()}")
    left = jobs.alive()
    for proc in left:
        try:
            proc.send_signal(signal.SIGCONT)  # a frozen worker must die too
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=10)


def group(count=1, **options):
    """One worker group serving every queue, quick to notice new jobs."""
    return {"QUEUE": "*", "COUNT": count, "MAX_ATTEMPTS": 3, "SLEEP_DELAY": 0.5, **options}


def live_workers(count: int, timeout: float = 30.0) -> dict[str, int]:
    """Wait until ``count`` worker processes have registered and run; identity → pid."""

    def check():
        rows = dict(Worker.objects.values_list("identity", "pid"))
        if len(rows) == count and all(psutil.pid_exists(pid) for pid in rows.values()):
            return rows
        return None

    return wait_until(check, timeout=timeout, what=f"{count} registered worker(s)")


def no_core_dumps():
    """os.abort() in a test job must not leave a core file in the repository."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    return soft, hard


def gone(pids) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True
