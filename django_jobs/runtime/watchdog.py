"""Hard stops: a job that outlives its timeout, or its cancellation's grace period, stops
the process that runs it.

Python cannot kill a thread, so the watchdog records the attempt (timed out, or
cancelled), gives the process's other claimed jobs back unspent, and ends the process;
the supervisor (or systemd, Kubernetes…) starts a fresh one. Timeout: ``@job(timeout=…)``,
else the group's ``MAX_RUNTIME``; grace: ``JOBS["CANCEL_GRACE"]``. Its writes use its own
connection with a bounded lock wait, and the process ends within ``RECORD_WITHIN``
seconds whether or not they could be made.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from django.db import connections

from .. import clock, signals
from ..conf import jobs_settings
from ..exceptions import JobTimeout
from ..executor import Call, cancelled_outcome, errored
from ..storage import LOCK_WAIT, Outcome, bound_lock_waits
from .heartbeat import deregister

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("django_jobs.worker")

#: Exit status of a worker process ended by a job's timeout.
EXIT_TIMEOUT = 75
#: Exit status of a worker process ended because a cancelled job did not stop in time.
EXIT_CANCELLED = 76
CHECK_EVERY = 0.2
#: The watchdog ends the process at most this long after it found a job past its timeout.
RECORD_WITHIN = 5.0


class Watchdog(threading.Thread):
    def __init__(self, worker: Worker) -> None:
        super().__init__(name="django-jobs-watchdog", daemon=True)
        self.worker = worker
        self.stop_event = threading.Event()

    def run(self) -> None:
        bound_lock_waits()  # a job's transaction may hold its own row: never wait on it
        grace = jobs_settings().cancel_grace
        while not self.stop_event.wait(CHECK_EVERY):
            overdue = self.worker.ledger.overdue(self.worker.group.max_runtime)
            if overdue is not None:
                self._kill(*overdue)
            cancelled = self.worker.ledger.cancel_overdue(grace)
            if cancelled is not None:
                self._stop_cancelled(cancelled, grace)

    def _kill(self, call: Call, limit: float) -> None:
        logger.error(
            "[jobs] [%s] job %s timed out after %g s: stopping worker %s",
            call.claimed.name, call.claimed.id, limit, self.worker.identity,
        )  # fmt: skip
        self._end_process(call, timed_out(call, limit), EXIT_TIMEOUT)

    def _stop_cancelled(self, call: Call, grace: float) -> None:
        identity = self.worker.identity
        logger.error(
            "[jobs] [%s] job %s did not stop within %g s of its cancellation: stopping worker %s",
            call.claimed.name, call.claimed.id, grace, identity,
        )  # fmt: skip
        note = (
            f"It did not stop within CANCEL_GRACE ({grace:g} s): its worker process "
            f"{identity} (pid {os.getpid()}) was stopped."
        )
        self._end_process(call, cancelled_outcome(call, None, note), EXIT_CANCELLED)

    def _end_process(self, call: Call, outcome: Outcome, code: int) -> None:
        worker = self.worker
        # Whatever the database does, the process ends within RECORD_WITHIN seconds;
        # what could not be written is left to recovery (the job's deadline has passed,
        # or its row is marked cancelled, which recovery turns into a cancelled job).
        threading.Timer(RECORD_WITHIN, _exit, [code]).start()
        try:
            ledger = worker.ledger
            ledger.take_call(call)
            others = ledger.take_pending() + ledger.take_running()
            storage = worker.storage
            signals.release(storage, others, clock.now())
            # A flush in progress elsewhere may be stuck on the job's lock: do not wait.
            locked = worker.flush_lock.acquire(timeout=LOCK_WAIT)
            try:
                outcomes = ledger.take_writes(worker.time_limit).outcomes
            finally:
                if locked:
                    worker.flush_lock.release()
            outcome.duration = time.monotonic() - call.started
            signals.record(storage, [*outcomes, outcome], clock.now())

            deregister(worker.identity, storage.alias)
        except Exception:
            # Recovery records it once the deadline plus the grace has passed, or as
            # "worker died" once the heartbeat is stale.
            logger.exception("[jobs] could not record the end of job %s", call.claimed.id)
        finally:
            _exit(code)

    def stop(self) -> None:
        self.stop_event.set()


def timed_out(call: Call, limit: float) -> Outcome:
    """The outcome of a job that ran past its timeout ``limit``."""
    error = JobTimeout(f"timed out after {limit:g} s")
    took = (time.monotonic() - call.started) * 1000
    outcome = errored(call.claimed, f"JobTimeout: {error}", elapsed_ms=took, error=error)
    outcome.started_at = call.started_at
    outcome.exception = error
    return outcome


def _exit(code: int = EXIT_TIMEOUT) -> None:
    try:
        connections.close_all()
        logging.shutdown()
    finally:
        os._exit(code)
