"""``manage.py jobs work``: one supervisor process keeping every configured worker alive.

The supervisor runs ``COUNT`` worker processes per group of ``JOBS["WORKERS"]``, each a
fresh ``python -m django jobs worker`` in its own session, so a Ctrl-C in the terminal
reaches the supervisor alone and the supervisor decides what the workers get:

* first SIGINT/SIGTERM: SIGTERM to every worker, which stops claiming and lets its
  running jobs finish (graceful);
* second signal: a second SIGTERM to every worker, which gives its running jobs back to
  run again at once, unspent (immediate); what is still alive ``IMMEDIATE_GRACE``
  seconds later is killed and its jobs given back;
* third signal: SIGKILL to every worker now.

While running, it replaces a worker that exits (crash, ``kill -9``, a job's timeout, a
cancelled job that did not stop within ``CANCEL_GRACE``, recycling after
``MAX_JOBS``/``MAX_MEMORY_MB``), backing off when one keeps dying quickly, and it kills
a worker whose heartbeat went stale (hung in C code, stopped), recovering that worker's
jobs at once instead of waiting for another host's lifeline.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, InterfaceError, connections

from .. import clock
from ..conf import WorkerGroup, jobs_settings
from ..recurring.scheduler import SchedulerThread, refuse_invalid_schedules
from .exporter import exporter_for_supervisor
from .heartbeat import HOST, identity_for, new_instance
from .proctitle import (
    ENV_CONSOLE_LOG,
    ENV_DETACHED,
    ENV_SUPERVISOR,
    LOG_DETACHED,
    SUPERVISOR_TITLE,
    apply_log_level,
    child_env,
    set_title,
)

logger = logging.getLogger("django_jobs.supervisor")

#: A worker that exits unexpectedly after less than this many seconds "died quickly".
QUICK_DEATH = 10.0
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 60.0
#: After the second signal, workers still alive this many seconds later are killed.
IMMEDIATE_GRACE = 10.0
#: The supervisor's loop wakes at least this often (and at once on a signal or SIGCHLD).
TICK = 0.5


@dataclass
class Slot:
    """One worker position (group, id): at most one live process at a time."""

    group: WorkerGroup
    worker_id: int
    process: subprocess.Popen | None = None
    started: float = 0.0
    quick_deaths: int = 0
    start_at: float = 0.0
    #: Why the supervisor killed the current process, if it did.
    killed_because: str = ""
    #: The current (or last) process's instance token: a new one at each start.
    instance: str = ""

    @property
    def identity(self) -> str:
        return identity_for(self.group, self.worker_id, self.instance)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def worker_command(group: WorkerGroup, worker_id: int, instance: str) -> list[str]:
    return [
        sys.executable, "-m", "django", "jobs", "worker",
        "--index", str(group.index), "--id", str(worker_id), "--instance", instance,
    ]  # fmt: skip


class Supervisor:
    def __init__(self, pidfile: str | None = None) -> None:
        self.settings = jobs_settings()
        self.pidfile = pidfile
        self.slots = [Slot(group, n) for group in self.settings.workers for n in range(group.count)]
        self.signals = 0
        self.relayed = 0
        self.kill_at: float | None = None
        self.db_ok_since: float | None = None
        self.next_check = 0.0
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.env = child_env()
        self.env[ENV_SUPERVISOR] = str(os.getpid())
        self.env[ENV_CONSOLE_LOG] = LOG_DETACHED if os.environ.get(ENV_DETACHED) else "DEBUG"
        #: Serves JOBS["METRICS"] on its PORT, adding up every worker's counters.
        self.exporter = exporter_for_supervisor()

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> int:
        set_title(SUPERVISOR_TITLE)
        if self.pidfile and not self._write_pidfile():
            return 1
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        if hasattr(signal, "SIGCHLD"):  # POSIX: notice a worker's death at once
            signal.signal(signal.SIGCHLD, lambda signum, frame: self._wake())
        logger.info(
            "[jobs] supervisor started (pid %s): %s worker(s) in %s group(s)",
            os.getpid(), len(self.slots), len(self.settings.workers),
        )  # fmt: skip
        # Recurring schedules are enqueued here, once per supervisor (not per worker), on
        # the scheduler thread's own connection; several supervisors never enqueue a tick
        # twice (see django_jobs.recurring.scheduler).
        if self.exporter is not None and not self.exporter.start(self.env):
            self.exporter = None
        scheduler = SchedulerThread()
        scheduler.start()
        try:
            while True:
                self._reap()
                if self.signals:
                    self._relay_signals()
                    if not any(slot.alive for slot in self.slots):
                        break
                    self._kill_stragglers()
                else:
                    self._start_due()
                self._check_heartbeats()
                self._sleep()
        finally:
            scheduler.stop()
            if self.exporter is not None:
                self.exporter.stop()
            if hasattr(signal, "SIGCHLD"):
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self._remove_pidfiles()
            connections.close_all()
        logger.info("[jobs] supervisor stopped")
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals += 1
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except BlockingIOError:
            pass

    def _sleep(self) -> None:
        timeout = TICK
        if not self.signals:
            waiting = [s.start_at for s in self.slots if s.process is None]
            if waiting:
                timeout = min(timeout, max(0.0, min(waiting) - time.monotonic()))
        readable, _, _ = select.select([self.wake_r], [], [], timeout)
        if readable:
            try:
                while os.read(self.wake_r, 4096):
                    pass
            except BlockingIOError:
                pass

    # -- starting and replacing workers ------------------------------------------------

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and now >= slot.start_at:
                self._start(slot)

    def _start(self, slot: Slot) -> None:
        # The supervisor chooses the identity, so it can recover the jobs of exactly this
        # process when it dies.
        slot.instance = new_instance()
        slot.process = subprocess.Popen(
            worker_command(slot.group, slot.worker_id, slot.instance),
            env=self.env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        slot.started = time.monotonic()
        slot.killed_because = ""
        logger.debug("[jobs] started %s (pid %s)", slot.identity, slot.process.pid)
        self._write_worker_pids()

    def _reap(self) -> None:
        for slot in self.slots:
            if slot.process is None or slot.process.poll() is None:
                continue
            code, pid = slot.process.returncode, slot.process.pid
            lived = time.monotonic() - slot.started
            slot.process = None
            self._write_worker_pids()
            if self.exporter is not None:
                self.exporter.worker_exited(pid)
            self._after_exit(slot, pid, code, lived)

    def _after_exit(self, slot: Slot, pid: int, code: int, lived: float) -> None:
        from .watchdog import EXIT_CANCELLED, EXIT_TIMEOUT

        identity = slot.identity
        if code == 0:
            if not self.signals:
                logger.info("[jobs] %s exited to be recycled: starting a fresh one", identity)
            slot.start_at = time.monotonic()
            return
        if slot.killed_because:
            how = slot.killed_because
        elif code < 0:
            how = f"killed by {_signal_name(-code)}"
        else:
            how = f"exit code {code}"
        # A job's timeout or cancellation and our own kill are no reason to wait. A worker
        # that keeps dying quickly (bad code, an unreachable database) is restarted once
        # at once, then after 1 s, 2 s, 4 s… up to BACKOFF_MAX.
        stopped_by_job = code in (EXIT_TIMEOUT, EXIT_CANCELLED)
        if stopped_by_job or slot.killed_because or lived >= QUICK_DEATH:
            slot.quick_deaths = 0
        else:
            slot.quick_deaths += 1
        delay = 0.0
        if slot.quick_deaths > 1:
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (slot.quick_deaths - 2))
        slot.start_at = time.monotonic() + delay
        if code == EXIT_TIMEOUT:
            logger.warning("[jobs] %s stopped after a job's timeout", identity)
        elif code == EXIT_CANCELLED:
            logger.warning(
                "[jobs] %s stopped: a cancelled job did not stop in time; starting a new one",
                identity,
            )
        elif self.signals:
            logger.warning("[jobs] %s ended while stopping (%s)", identity, how)
        else:
            logger.error(
                "[jobs] %s (pid %s) died after %.1f s (%s): %s",
                identity, pid, lived, how,
                f"starting a new one in {delay:g} s" if delay else "starting a new one",
            )  # fmt: skip
        self._cleanup(slot, pid, how)

    def _cleanup(self, slot: Slot, pid: int, how: str) -> None:
        """Free what a dead worker held: its jobs at once, and its worker row."""
        from .. import signals
        from ..models import Worker
        from ..storage import get_storage
        from .lifeline import recover_worker_jobs

        alias = slot.group.database
        identity = slot.identity
        try:
            if slot.killed_because == "stopped at once":
                storage = get_storage(alias)
                jobs = [row.job for row in storage.held_by(identity)]
                signals.release(storage, jobs, clock.now())
            else:
                recover_worker_jobs(identity, how, alias)
            Worker.objects.using(alias).filter(identity=identity, pid=pid).delete()
        except (DatabaseError, InterfaceError) as exc:
            # Every worker's lifeline recovers them once this one's heartbeat is stale.
            logger.warning("[jobs] could not recover the jobs of %s now: %s", identity, exc)
            connections[alias].close()

    # -- heartbeats ----------------------------------------------------------------------

    def _check_heartbeats(self) -> None:
        """Kill a worker whose heartbeat is stale although the database is reachable."""
        from ..models import Worker
        from ..storage import get_storage

        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + max(0.25, self.settings.heartbeat_interval)
        live = {slot.process.pid: slot for slot in self.slots if slot.alive}
        if not live:
            return
        rows = []
        # Each worker beats in its group's database, by that database's clock.
        for alias in dict.fromkeys(slot.group.database for slot in live.values()):
            try:
                db_now = get_storage(alias).database_now()
                rows += [
                    (*row, db_now)
                    for row in Worker.objects.using(alias)
                    .filter(host=HOST, pid__in=list(live))
                    .values_list("pid", "identity", "heartbeat_at")
                ]
            except (DatabaseError, InterfaceError) as exc:
                self._database_lost(alias, exc)
                return
        if self.db_ok_since is None:
            self.db_ok_since = now
        timeout = self.settings.heartbeat_timeout
        # Workers could not beat while the database was away: give them a full timeout
        # after it came back before judging them.
        if now - self.db_ok_since < timeout:
            return
        for pid, identity, heartbeat_at, db_now in rows:
            slot = live[pid]
            cutoff = db_now - timedelta(seconds=timeout)
            if identity != slot.identity or heartbeat_at >= cutoff or slot.killed_because:
                continue
            logger.error(
                "[jobs] %s (pid %s) has not beaten for %.1f s: killing it",
                identity, pid, (db_now - heartbeat_at).total_seconds(),
            )  # fmt: skip
            slot.killed_because = f"no heartbeat for {timeout:g} s; killed by the supervisor"
            _kill_group(pid, signal.SIGKILL)

    def _database_lost(self, alias: str, exc: Exception) -> None:
        if self.db_ok_since is not None:
            logger.warning("[jobs] supervisor cannot reach the database: %s", exc)
        self.db_ok_since = None
        connections[alias].close()

    # -- stopping ------------------------------------------------------------------------

    def _relay_signals(self) -> None:
        while self.relayed < self.signals:
            self.relayed += 1
            alive = [slot for slot in self.slots if slot.alive]
            if self.relayed == 1:
                logger.info(
                    "[jobs] stopping %s worker(s) after their running jobs finish "
                    "(signal again to stop at once)",
                    len(alive),
                )
                for slot in alive:
                    _signal(slot.process.pid, signal.SIGTERM)
            elif self.relayed == 2:
                logger.info("[jobs] stopping at once: running jobs will run again")
                self.kill_at = time.monotonic() + IMMEDIATE_GRACE
                for slot in alive:
                    _signal(slot.process.pid, signal.SIGTERM)
            else:
                self.kill_at = time.monotonic()

    def _kill_stragglers(self) -> None:
        if self.kill_at is None or time.monotonic() < self.kill_at:
            return
        for slot in self.slots:
            if slot.alive and not slot.killed_because:
                logger.warning("[jobs] %s did not stop: killing it", slot.identity)
                slot.killed_because = "stopped at once"
                _kill_group(slot.process.pid, signal.SIGKILL)

    # -- pid files -----------------------------------------------------------------------

    def _write_pidfile(self) -> bool:
        from .daemon import claim_pidfile

        other = claim_pidfile(self.pidfile)
        if other:
            logger.error("[jobs] a supervisor is already running (pid %s)", other)
        return not other

    def _write_worker_pids(self) -> None:
        if self.pidfile:
            from .daemon import write_worker_pids

            write_worker_pids(
                self.pidfile, {s.process.pid: s.identity for s in self.slots if s.process}
            )

    def _remove_pidfiles(self) -> None:
        if self.pidfile:
            from .daemon import release_pidfile

            release_pidfile(self.pidfile)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _kill_group(pid: int, signum: int) -> None:
    """Signal a worker and whatever its jobs started in its process group."""
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError, AttributeError):
        _signal(pid, signum)


def run_supervisor(pidfile: str | None = None) -> int:
    """Entry point of ``manage.py jobs work``; returns the exit code."""
    apply_log_level(LOG_DETACHED if os.environ.get(ENV_DETACHED) else "DEBUG")
    refuse_invalid_schedules()
    return Supervisor(pidfile).run()
