"""Embedded mode: a small worker inside each web process (``JOBS["EMBEDDED"]``).

It is the worker of ``manage.py jobs work`` (:class:`~.worker.Worker`, with its claim,
fencing, heartbeat, lifeline, flusher, controls and waiter) run on a background thread of
the web process, with three differences:

* it claims only as many jobs as it has free threads: what it cannot run yet stays in the
  table, in claim order, for this process or any other worker (nothing is held in memory
  that a crash would lose);
* every job runs on a pool thread, never on the worker's own thread, and a job past its
  timeout is recorded as timed out and its thread abandoned and replaced: the watchdog of
  ``jobs work`` ends the process instead, which here is the web server's. Python cannot
  stop a thread, so the abandoned one runs on until the job returns;
* it starts on the first request or enqueue of a process (never at import, never in a
  management command but ``runserver``), again in a child after a fork, and stops when the
  process exits: running jobs have ``SHUTDOWN_TIMEOUT`` seconds to end, then are given
  back unspent.

docs/howto/embedded.md says when to use it and when to move to ``manage.py jobs work``.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.core.signals import request_started

from ..conf import EMBEDDED_GROUP, EmbeddedSettings, WorkerGroup, jobs_settings
from ..executor import Call, cancelled_outcome
from ..signals import job_enqueued
from .heartbeat import HOST, new_instance
from .runners import ThreadRunner
from .watchdog import RECORD_WITHIN, Watchdog, timed_out
from .worker import Worker

logger = logging.getLogger("django_jobs.worker")

#: After the embedded worker failed to start (the database was away), the next request
#: tries again no sooner than this.
RETRY_AFTER = 5.0
#: Management commands that serve requests, and so may run an embedded worker.
SERVING_COMMANDS = frozenset({"runserver"})


class EmbeddedWorker(Worker):
    def __init__(self, options: EmbeddedSettings) -> None:
        group = WorkerGroup(
            index=EMBEDDED_GROUP,
            queues=options.queues,
            threads=options.threads,
            async_concurrency=options.threads,
            batch_size=options.threads,
        )
        # The instance token: web containers share host names and pids (see identity_for).
        identity = f"django-jobs-embedded.{group.queue_label}.{os.getpid()}@{HOST}/{new_instance()}"
        super().__init__(group, os.getpid(), identity=identity)
        if self.threads is None:
            # Never on the worker's own thread: a job past its timeout must be abandoned.
            self.threads = ThreadRunner(1, self.finished)
        self.watchdog = EmbeddedWatchdog(self)

    def _busy(self) -> int:
        return self.threads.running + self.asyncs.running

    def _free_slots(self) -> int:
        # Sync and async jobs share the THREADS slots: at most THREADS run at once.
        return max(self.group.threads - self._busy(), 0)

    def _claim_size(self, free: int) -> int:
        return free  # no prefetch: a job not running stays in the table

    def _has_slot(self, call: Call) -> bool:
        return self._may_start(call) and self._busy() < self.group.threads


class EmbeddedWatchdog(Watchdog):
    """Records a job past its timeout (or its cancellation's grace) and abandons it,
    instead of ending the process: the process is the web server's."""

    def _kill(self, call: Call, limit: float) -> None:
        logger.error(
            "[jobs] [%s] job %s timed out after %g s: its thread in web process %s is "
            "abandoned and replaced (a thread cannot be stopped; use manage.py jobs work "
            "for hard timeouts)",
            call.claimed.name, call.claimed.id, limit, os.getpid(),
        )  # fmt: skip
        self._abandon(call, timed_out(call, limit))

    def _stop_cancelled(self, call: Call, grace: float) -> None:
        logger.error(
            "[jobs] [%s] job %s did not stop within %g s of its cancellation: its thread "
            "in web process %s is abandoned",
            call.claimed.name, call.claimed.id, grace, os.getpid(),
        )  # fmt: skip
        note = (
            f"It did not stop within CANCEL_GRACE ({grace:g} s): its thread in web process "
            f"{os.getpid()} was abandoned (it may still be running)."
        )
        self._abandon(call, cancelled_outcome(call, None, note))

    def _abandon(self, call: Call, outcome) -> None:
        from .. import clock, signals

        worker = self.worker
        if not worker.ledger.take_call(call):
            return  # it ended meanwhile: its own outcome stands
        runner = worker.asyncs if call.is_async else worker.threads
        runner.abandon(call)
        outcome.duration = time.monotonic() - call.started
        try:
            signals.record(worker.storage, [outcome], clock.now())
        except Exception:
            # Recovery records it once its deadline plus HEARTBEAT_TIMEOUT has passed.
            logger.exception("[jobs] could not record the end of job %s", call.claimed.id)
        worker.wake()  # its slot is free


# -- one embedded worker per process ---------------------------------------------------

_lock = threading.Lock()
_worker: EmbeddedWorker | None = None
_thread: threading.Thread | None = None
#: monotonic time before which no start is tried (after a failed one)
_not_before = 0.0
#: This process never runs one (a test environment): decided once.
_refused = False


def install() -> None:
    """From ``AppConfig.ready()``: start on the first request or enqueue of a process
    that serves requests, when ``JOBS["EMBEDDED"]["ENABLED"]``."""
    if not jobs_settings().embedded.enabled or not serving():
        return
    request_started.connect(_on_request, dispatch_uid="django_jobs.embedded")
    job_enqueued.connect(_on_enqueue, dispatch_uid="django_jobs.embedded")


def serving(argv: list[str] | None = None) -> bool:
    """False in a management command other than ``runserver`` (``jobs work`` included)."""
    argv = sys.argv if argv is None else argv
    if len(argv) < 2:
        return True
    program = os.path.basename(argv[0])
    is_manage = program in ("manage.py", "django-admin", "django-admin.py") or (
        program == "__main__.py" and os.path.basename(os.path.dirname(argv[0])) == "django"
    )
    return not is_manage or argv[1] in SERVING_COMMANDS


def _on_request(sender, **kwargs) -> None:
    ensure_started()


def _on_enqueue(sender, job, **kwargs) -> None:
    worker = ensure_started()
    if worker is not None:
        worker.wake()  # sent after the enqueue's transaction committed: claim now


def _under_tests() -> bool:
    # Django's test environment (the test runner, pytest-django): tests run jobs with
    # django_jobs.testing, not behind their back. start() still works there.
    utils = sys.modules.get("django.test.utils")
    return utils is not None and hasattr(utils._TestState, "saved_data")


def ensure_started() -> EmbeddedWorker | None:
    """The process's embedded worker, started if it is not running yet."""
    global _refused
    worker = _worker
    if worker is not None or _refused or time.monotonic() < _not_before:
        return worker
    if _under_tests():
        _refused = True
        return None
    return start()


def start() -> EmbeddedWorker:
    """Start this process's embedded worker (once; later calls return it)."""
    global _worker, _thread
    with _lock:
        if _worker is not None:
            return _worker
        worker = EmbeddedWorker(jobs_settings().embedded)
        thread = threading.Thread(
            target=_run, args=(worker,), name="django-jobs-embedded", daemon=True
        )
        _worker, _thread = worker, thread
        thread.start()
    return worker


def _run(worker: EmbeddedWorker) -> None:
    global _worker, _thread, _not_before
    try:
        worker.run()
    except Exception:
        logger.exception("[jobs] the embedded worker of process %s stopped", os.getpid())
    finally:
        with _lock:
            if _worker is worker:
                _worker = _thread = None
                _not_before = time.monotonic() + RETRY_AFTER


def stop(timeout: float | None = None) -> None:
    """Stop this process's embedded worker: running jobs have ``timeout`` seconds (else
    ``SHUTDOWN_TIMEOUT``) to end, then are given back unspent. Run at process exit."""
    global _refused
    with _lock:
        worker, thread = _worker, _thread
        _refused = True  # a request or enqueue from here on starts nothing
    if worker is None or thread is None:
        return
    grace = jobs_settings().embedded.shutdown_timeout if timeout is None else timeout
    worker.stopping.set()
    worker.wake()
    thread.join(grace)
    if thread.is_alive():
        logger.warning(
            "[jobs] %s: jobs still running after %g s are given back unspent",
            worker.identity, grace,
        )  # fmt: skip
        worker.immediate = True
        worker.wake()
        thread.join(RECORD_WITHIN)


def lifespan(application: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The ASGI ``application`` with the lifespan protocol Django lacks: at the server's
    shutdown the embedded worker stops (running jobs get ``SHUTDOWN_TIMEOUT``, then are
    given back unspent).

    Needed under uvicorn: after its graceful shutdown it ends the process by raising the
    SIGTERM it caught again, which skips Python's exit handlers.
    """

    async def app(scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "lifespan":
            return await application(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await sync_to_async(stop, thread_sensitive=False)()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


def _forget_after_fork() -> None:
    """In a forked child: the parent's worker thread did not come along. The child starts
    its own on its first request or enqueue."""
    global _lock, _worker, _thread, _refused, _not_before
    worker = _worker
    _lock = threading.Lock()
    _worker = _thread = None
    _refused, _not_before = False, 0.0
    if worker is not None:
        for fd in (worker.wake_r, worker.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


atexit.register(stop)
os.register_at_fork(after_in_child=_forget_after_fork)
