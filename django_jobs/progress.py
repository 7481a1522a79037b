"""Job progress and events, written on a connection of its own.

``context.progress()`` is called from inside a job: possibly inside the job's own
``transaction.atomic()``, from a pool thread, or from an ``async def`` job on the event
loop. Writing on the job's connection would hide the progress until the job commits, lose
it on rollback, take a lock on the job's own row (the watchdog's write would then wait
for the job it is trying to stop) and fail in async code (``SynchronousOnlyOperation``).
So one thread per worker writes progress, on its own connection, with a bounded lock
wait; callers outside an event loop wait for the write, async callers do not block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import DatabaseError, InterfaceError, connections

from . import clock
from .storage import ClaimedJob, Storage, bound_lock_waits, job_channel

logger = logging.getLogger("django_jobs.worker")


class ProgressWriter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._executor: ThreadPoolExecutor | None = None

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="django-jobs-progress",
                initializer=bound_lock_waits,
            )  # fmt: skip
        return self._executor

    def reporter(self, job: ClaimedJob) -> Callable[[int, str], Future]:
        """What a job's context calls: submits the write and returns its future."""
        return lambda percent, message: self._pool().submit(self._write, job, percent, message)

    def publisher(self, job: ClaimedJob) -> Callable[[str], Future]:
        """What a job's ``context.publish`` calls with the event's JSON text."""
        return lambda payload: self._pool().submit(self._publish, job, payload)

    def _publish(self, job: ClaimedJob, payload: str) -> None:
        try:
            self.storage.publish(job_channel(job.id), payload, clock.now())
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("[jobs] event of job %s not published: %s", job.id, exc)
            connections.close_all()

    def _write(self, job: ClaimedJob, percent: int, message: str) -> None:
        try:
            self.storage.set_progress(job, percent, message)
        except (DatabaseError, InterfaceError) as exc:
            # Progress is advisory: a lost update must not fail the job.
            logger.warning("[jobs] progress of job %s not saved: %s", job.id, exc)
            connections.close_all()

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.submit(connections.close_all)
            self._executor.shutdown(wait=True)
            self._executor = None
