"""``jobs start``, ``jobs stop`` and ``jobs restart``: the supervisor as a detached daemon.

``start`` launches ``python -m django jobs work --pidfile …`` in a new session with its
output in ``JOBS["LOG_FILE"]`` (or discarded; Django's LOGGING applies either way). The
pid file is ``<PID_DIR>/<settings module>.pid``; next to it the supervisor keeps
``<settings module>.workers``, the pids of its workers, so that ``stop --force`` can kill
them even when the supervisor itself is gone.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, InterfaceError

from ..conf import jobs_settings
from .heartbeat import process_alive

#: How long ``start`` waits for the supervisor to write its pid file.
START_TIMEOUT = 30.0
#: With ``--force``: after the timeout, a second signal (stop at once) and this grace.
FORCE_GRACE = 5.0
POLL = 0.1

#: Kept so that a detached Popen is never collected (and never warns) in this process.
_launched: list[subprocess.Popen] = []


class DaemonError(ValueError):
    """A daemon command could not do what it was asked (the command prints why)."""


def pid_file() -> str:
    return os.path.join(jobs_settings().pid_dir, f"{settings.SETTINGS_MODULE}.pid")


def workers_file(pidfile: str) -> str:
    base = pidfile[: -len(".pid")] if pidfile.endswith(".pid") else pidfile
    return base + ".workers"


def write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as file:
        file.write(text)
    os.replace(tmp, path)


def read_pid(path: str) -> int | None:
    try:
        with open(path) as file:
            return int(file.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


@contextmanager
def _pidfile_lock(path: str) -> Iterator[None]:
    """Exclusive among every process claiming or releasing ``path``.

    Checking who owns the pid file and writing it are two steps; two ``jobs start`` (or a
    restart racing a start) would both see no live owner and both write. The lock is an
    ``flock`` on a sibling file that is never removed (removing it would let a newcomer
    lock a fresh inode while an older holder still locks the unlinked one); the kernel
    drops it when its holder dies, so a killed supervisor cannot leave it held.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def claim_pidfile(path: str) -> int | None:
    """Write this process's pid to ``path``; the pid of a live supervisor already there.

    Of processes claiming the same path at once, exactly one gets None. A file left by a
    supervisor that died is taken over, and its worker list (pids that may since have
    been recycled) removed.
    """
    with _pidfile_lock(path):
        other = read_pid(path)
        if other == os.getpid():
            return None
        if other and supervisor_alive(other):
            return other
        _unlink(workers_file(path))
        write_atomically(path, f"{os.getpid()}\n")
    return None


def write_worker_pids(pidfile: str, identities: dict[int, str]) -> None:
    """The supervisor's live workers: pid → worker identity."""
    write_atomically(workers_file(pidfile), json.dumps({str(p): i for p, i in identities.items()}))


def release_pidfile(pidfile: str) -> None:
    """Remove the pid files, if they are still ours."""
    with _pidfile_lock(pidfile):
        if read_pid(pidfile) == os.getpid():
            _unlink(workers_file(pidfile))
            _unlink(pidfile)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_worker_pids(pidfile: str) -> list[int]:
    return list(read_worker_identities(pidfile))


def read_worker_identities(pidfile: str) -> dict[int, str]:
    """pid → identity of the supervisor's workers (an older supervisor listed pids only)."""
    try:
        with open(workers_file(pidfile)) as file:
            listed = json.load(file)
        if isinstance(listed, dict):
            return {int(pid): str(identity) for pid, identity in listed.items()}
        return {int(pid): "" for pid in listed}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _command_line(pid: int) -> str | None:
    """The process's command line, or None where /proc is not available."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except FileNotFoundError:
        return "" if os.path.isdir("/proc/self") else None
    except OSError:
        return None


def _looks_like(pid: int, title: str, verb: str) -> bool:
    """Guard against a pid recycled by an unrelated process since it was written down."""
    if not process_alive(pid):
        return False
    line = _command_line(pid)
    return line is None or title in line or f"jobs {verb}" in line


def supervisor_alive(pid: int) -> bool:
    return _looks_like(pid, "django-jobs-supervisor", "work")


def worker_alive(pid: int) -> bool:
    return _looks_like(pid, "django-jobs-worker", "worker")


def running_pid() -> int | None:
    """The pid of this project's detached supervisor, if it runs."""
    pid = read_pid(pid_file())
    return pid if pid and supervisor_alive(pid) else None


def start() -> str:
    """Launch the supervisor detached; refuse if one already runs for these settings."""
    from .proctitle import ENV_DETACHED, child_env

    path = pid_file()
    pid = running_pid()
    if pid:
        raise DaemonError(f"django_jobs is already running (pid {pid}, pid file {path})")
    # A stale pid file is left for the supervisor's claim to replace under its lock:
    # unlinking it here could remove the file of a supervisor a concurrent start launched.
    os.makedirs(os.path.dirname(path), exist_ok=True)
    log_file = jobs_settings().log_file
    env = child_env()
    env[ENV_DETACHED] = "1"
    with open(log_file or os.devnull, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "jobs", "work", "--pidfile", path],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _launched.append(process)
    deadline = time.monotonic() + START_TIMEOUT
    while read_pid(path) != process.pid:
        code = process.poll()
        if code is not None:
            other = running_pid()
            if other:  # a concurrent start won the pid file
                raise DaemonError(f"django_jobs is already running (pid {other}, pid file {path})")
            where = f"see {log_file}" if log_file else "set JOBS['LOG_FILE'] to see why"
            raise DaemonError(f"the supervisor exited at once (code {code}): {where}")
        if time.monotonic() > deadline:
            raise DaemonError(f"the supervisor did not start within {START_TIMEOUT:g} s")
        time.sleep(POLL)
    count = sum(group.count for group in jobs_settings().workers)
    log = log_file or "discarded (JOBS['LOG_FILE'] is not set)"
    return (
        f"Started django_jobs: supervisor pid {process.pid} running {count} worker(s); "
        f"pid file {path}; log {log}"
    )


def _wait_gone(pids: set[int], timeout: float, pidfile: str) -> set[int]:
    """Wait until every pid (and every worker the supervisor lists) is gone; what is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids |= {pid for pid in read_worker_pids(pidfile) if worker_alive(pid)}
        left = {pid for pid in pids if process_alive(pid)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(POLL)


def stop(timeout: float = 60.0, force: bool = False) -> str:
    """Stop the detached supervisor and its workers gracefully (and, with force, surely)."""
    path = pid_file()
    pid = running_pid()
    workers = {p for p in read_worker_pids(path) if worker_alive(p)}
    if pid is None and not workers:
        return "django_jobs is not running."
    # Without their supervisor (killed), workers stop by themselves once idle; a signal
    # makes it now.
    for target in [pid] if pid else sorted(workers):
        _signal(target, signal.SIGTERM)
    left = _wait_gone({pid, *workers} - {None}, timeout, path)
    if not left:
        who = f"supervisor pid {pid}" if pid else "no supervisor"
        return f"Stopped django_jobs ({who} and {len(workers)} worker(s))."
    if not force:
        raise DaemonError(
            f"still running after {timeout:g} s (pids {sorted(left)}): running jobs have not "
            "finished; wait, or use --force to stop them at once"
        )
    for target in [pid] if pid and process_alive(pid) else sorted(left):
        _signal(target, signal.SIGTERM)  # the second signal: running jobs go back unspent
    left = _wait_gone(left, FORCE_GRACE, path)
    killed = sorted(p for p in left if p == pid or worker_alive(p))
    identities = read_worker_identities(path)
    for victim in killed:
        _signal(victim, signal.SIGKILL)
    _wait_gone(set(killed), FORCE_GRACE, path)
    _release_jobs_of([identities[p] for p in killed if identities.get(p)])
    with _pidfile_lock(path):
        owner = read_pid(path)
        if not (owner and supervisor_alive(owner)):  # not a supervisor started meanwhile
            _unlink(workers_file(path))
            _unlink(path)
    return f"Stopped django_jobs; killed pids {killed} that were still running after {timeout:g} s."


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _release_jobs_of(identities: list[str]) -> None:
    """Jobs of killed workers run again at once instead of after a heartbeat timeout.

    By identity, not by host and pid: another container with the same host name may run a
    worker with the same pid, and its jobs are not ours to take.
    """
    from ..models import Worker
    from .lifeline import recover_worker_jobs

    if not identities:
        return
    for alias in jobs_settings().databases:
        try:
            rows = Worker.objects.using(alias).filter(identity__in=identities)
            for row in rows:
                recover_worker_jobs(row.identity, "killed by jobs stop --force", alias)
                row.delete()
        except (DatabaseError, InterfaceError):
            pass  # the lifeline recovers them once their heartbeats are stale


def restart(timeout: float = 60.0, force: bool = False) -> str:
    """Stop, then start: the new workers are fresh processes running the current code."""
    stopped = stop(timeout=timeout, force=force)
    return f"{stopped}\n{start()}"
