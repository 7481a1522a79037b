"""Hard timeouts: a job that outlives its timeout stops the process that runs it.

Python cannot kill a thread, so the watchdog records the timed-out attempt, gives the
process's other claimed jobs back unspent, and ends the process; the supervisor (or
systemd, Kubernetes…) starts a fresh one. Timeout: ``@job(timeout=…)``, else the
group's ``MAX_RUNTIME``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from django.db import connections

from .. import clock
from ..executor import errored

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("django_jobs.worker")

#: Exit status of a worker process ended by a job's timeout.
EXIT_TIMEOUT = 75
CHECK_EVERY = 0.2


class Watchdog(threading.Thread):
    def __init__(self, worker: Worker) -> None:
        super().__init__(name="django-jobs-watchdog", daemon=True)
        self.worker = worker
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(CHECK_EVERY):
            overdue = self._overdue()
            if overdue is not None:
                self._kill(*overdue)

    def _overdue(self):
        worker = self.worker
        now = time.monotonic()
        with worker.lock:
            for call in worker.inflight.values():
                limit = call.timeout or worker.group.max_runtime
                if call.started and now - call.started > limit:
                    return call, limit
        return None

    def _kill(self, call, limit: float) -> None:
        worker = self.worker
        logger.error(
            "[jobs] [%s] job %s timed out after %g s: stopping worker %s",
            call.claimed.name, call.claimed.id, limit, worker.identity,
        )  # fmt: skip
        text = f"JobTimeout: timed out after {limit:g} s"
        try:
            with worker.lock:
                others = [i for i in worker.inflight if i != call.claimed.id]
                others += [c.claimed.id for c in worker.pending]
                outcomes = [*worker.buffered, errored(call.claimed, text, worker.group)]
                worker.buffered = []
                worker.inflight.clear()
                worker.pending.clear()
            storage = worker.storage
            storage.release(worker.identity, others, clock.now())
            storage.record(
                worker.identity,
                outcomes,
                clock.now(),
                keep_succeeded=not worker.group.delete_successful_jobs,
                delete_failed=worker.group.delete_failed_jobs,
            )
            from .heartbeat import deregister

            deregister(worker.identity)
        except Exception:
            # The lifeline will recover the job as "worker died" from the stale heartbeat.
            logger.exception("[jobs] could not record the timeout of job %s", call.claimed.id)
        finally:
            connections.close_all()
            logging.shutdown()
            os._exit(EXIT_TIMEOUT)

    def stop(self) -> None:
        self.stop_event.set()
