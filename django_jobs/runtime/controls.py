"""The control thread: paused queues and cancelled jobs reach a running worker.

Operators change both in the database (``django_jobs.pausing``, ``django_jobs.cancelling``),
from any host; each worker process has one control thread that reads them

* every :func:`poll_interval` seconds (the group's ``SLEEP_DELAY``, at most one heartbeat
  interval), and
* at once on PostgreSQL, where a pause, a resume and a cancellation send a NOTIFY on the
  channel workers already LISTEN on (a connection of this thread's own).

What it reads: the set of paused queues, which the worker's claims leave out (kept in
memory, so the claim statement stays the one its index serves), and which of the jobs
this worker holds were asked to stop. A cancelled job that has not started is given back
(the give-back statement ends it cancelled); a running one is told (its context's
``should_stop()`` turns true) and the watchdog stops the whole process if it still runs
``CANCEL_GRACE`` seconds later.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from django.db import DatabaseError, InterfaceError, connections

from ..conf import WorkerGroup, jobs_settings
from ..storage import bound_lock_waits
from ..storage.waiting import Waiter

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("django_jobs.worker")

#: Between two reports of the same database error.
LOG_EVERY = 30.0
#: The shortest interval between two polls.
MIN_INTERVAL = 0.05


def poll_interval(group: WorkerGroup) -> float:
    """How often a worker of ``group`` reads pauses and cancellations (engines without
    push): its ``SLEEP_DELAY``, and never less often than it beats."""
    return max(MIN_INTERVAL, min(group.sleep_delay, jobs_settings().heartbeat_interval))


class Controls(threading.Thread):
    def __init__(self, worker: Worker) -> None:
        super().__init__(name="django-jobs-controls", daemon=True)
        self.worker = worker
        self.storage = worker.storage
        #: The paused queues as last read; replaced whole, so readers need no lock.
        self.paused: frozenset[str] = frozenset()
        self.interval = poll_interval(worker.group)
        self.stop_event = threading.Event()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.waiter: Waiter | None = None
        self.last_logged = 0.0

    def prime(self) -> None:
        """Listen, then read the paused queues: called before the worker's first claim, so
        no pause can fall between the two."""
        self.waiter = self.storage.control_waiter()
        self.waiter.start()
        self.paused = self.storage.paused_queues()
        if self.paused:
            logger.info(
                "[jobs] %s: paused queue(s) not claimed from: %s",
                self.worker.identity, ", ".join(sorted(self.paused)),
            )  # fmt: skip

    def run(self) -> None:
        bound_lock_waits()  # a job's transaction may hold its own row: never wait on it
        try:
            while not self.stop_event.is_set():
                self.waiter.wait(self.interval, self.wake_r)
                if self.stop_event.is_set():
                    break
                try:
                    self.poll()
                except (DatabaseError, InterfaceError) as exc:
                    # Nothing is lost: the next poll reads the same rows again.
                    if time.monotonic() - self.last_logged > LOG_EVERY:
                        self.last_logged = time.monotonic()
                        logger.warning(
                            "[jobs] %s: cannot read pauses and cancellations yet: %s",
                            self.worker.identity, exc,
                        )  # fmt: skip
                    connections.close_all()
        finally:
            if self.waiter is not None:
                self.waiter.close()
            connections.close_all()

    def poll(self) -> None:
        self._read_pauses()
        held = self.worker.ledger.held_ids()
        if held:
            requested = self.storage.cancel_requested(held)
            if requested:
                self.worker.cancel_requested(requested)

    def _read_pauses(self) -> None:
        paused = self.storage.paused_queues()
        if paused == self.paused:
            return
        resumed, newly = self.paused - paused, paused - self.paused
        self.paused = paused
        if newly:
            logger.info(
                "[jobs] %s: queue(s) paused, not claimed from: %s",
                self.worker.identity, ", ".join(sorted(newly)),
            )  # fmt: skip
        if resumed:
            logger.info(
                "[jobs] %s: queue(s) resumed: %s", self.worker.identity, ", ".join(sorted(resumed))
            )
            self.worker.wake()  # an idle worker claims their backlog now

    def stop(self) -> None:
        self.stop_event.set()
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass
        if self.is_alive():
            self.join(timeout=5)
        if not self.is_alive():
            os.close(self.wake_r)
            os.close(self.wake_w)
