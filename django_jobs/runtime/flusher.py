"""The flusher thread: bounds how long a worker sits on starts, outcomes and claimed jobs.

The main thread writes starts and outcomes before it claims, waits or stops; but while it
runs a long job itself nothing else would. Every ``FLUSH_INTERVAL / 2`` the flusher

* writes what has waited ``FLUSH_INTERVAL`` or more: after a crash, at most that much
  finished work runs again, and a job running longer than that is known to have started
  (recovery charges it an attempt; a job not known to have started is given back unspent);
* gives back claimed jobs that could not start within ``HOLD_LIMIT`` (they were behind a
  long job), so an idle worker elsewhere runs them instead of waiting.

It writes on its own connection with a bounded lock wait: a job's own transaction may
hold a lock on its own row.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from django.db import DatabaseError, InterfaceError, connections

from .. import clock, signals
from ..storage import bound_lock_waits

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("django_jobs.worker")

#: Starts and outcomes are written at most this long after they happen, whatever the
#: worker is doing: after a crash, at most this much finished work runs again.
FLUSH_INTERVAL = 0.05
#: A claimed job that could not start within this many seconds (a long job ahead of it)
#: is given back for another worker to run.
HOLD_LIMIT = 0.2
#: Between two reports of the same database error.
LOG_EVERY = 30.0


class Flusher(threading.Thread):
    def __init__(self, worker: Worker) -> None:
        super().__init__(name="django-jobs-flusher", daemon=True)
        self.worker = worker
        self.stop_event = threading.Event()
        self.last_logged = 0.0

    def run(self) -> None:
        bound_lock_waits()
        worker = self.worker
        try:
            while not self.stop_event.wait(FLUSH_INTERVAL / 2):
                try:
                    if worker.ledger.unwritten_for() >= FLUSH_INTERVAL:
                        # Starts of jobs younger than a tick wait for the next one: most
                        # short jobs have ended by then, and their start is written
                        # with their outcome instead of in a statement of its own.
                        worker.flush_settled()
                    self._give_back_hoarded()
                except (DatabaseError, InterfaceError) as exc:
                    # Nothing is lost: the writes went back into the ledger. The main
                    # thread rides out outages; here we only try again next tick.
                    if time.monotonic() - self.last_logged > LOG_EVERY:
                        self.last_logged = time.monotonic()
                        logger.warning("[jobs] %s: cannot write yet: %s", worker.identity, exc)
                    connections.close_all()
        finally:
            connections.close_all()

    def _give_back_hoarded(self) -> None:
        worker = self.worker
        stale = worker.ledger.take_stale(HOLD_LIMIT)
        if not stale:
            return
        try:
            signals.release(worker.storage, [call.claimed for call in stale], clock.now())
        except BaseException:
            worker.ledger.put_back(stale)
            raise
        logger.debug(
            "[jobs] %s: gave back %s job(s) waiting behind a long one",
            worker.identity, len(stale),
        )  # fmt: skip

    def stop(self) -> None:
        self.stop_event.set()
