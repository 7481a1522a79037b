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

A process runs one such worker per jobs database its ``QUEUES`` live in (queues may
live in databases of their own): each is a worker group of that database, with its own
``THREADS``, heartbeat and recovery there, started again on its own after it stopped.

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
    def __init__(
        self,
        options: EmbeddedSettings,
        database: str | None = None,
        queues: tuple[str, ...] | None = None,
    ) -> None:
        """The worker of ``database`` (default ``JOBS["DATABASE"]``) serving ``queues``
        (default ``options.queues``; None: every queue of that database)."""
        group = WorkerGroup(
            index=EMBEDDED_GROUP,
            queues=options.queues if database is None else queues,
            threads=options.threads,
            async_concurrency=options.threads,
            batch_size=options.threads,
            database=database or jobs_settings().main_database,
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


def placements(options: EmbeddedSettings) -> list[tuple[str, tuple[str, ...] | None]]:
    """(database, queues) of each embedded worker: one per jobs database the embedded
    queues live in. ``"*"`` is every queue of every jobs database."""
    settings = jobs_settings()
    if options.queues is None:
        return [(alias, None) for alias in settings.databases]
    placed: dict[str, list[str]] = {}
    for queue in options.queues:
        placed.setdefault(settings.database_for(queue), []).append(queue)
    return [(alias, tuple(queues)) for alias, queues in placed.items()]


# -- the embedded workers of a process: one per jobs database -----------------------------

_lock = threading.Lock()
#: alias -> (its worker, the thread running it), while it runs.
_running: dict[str, tuple[EmbeddedWorker, threading.Thread]] = {}
#: alias -> monotonic time before which no start is tried (after its worker stopped: the
#: database was away). Each database on its own: one down leaves the others' workers.
_not_before: dict[str, float] = {}
#: This process never runs one (a test environment, or exiting): decided once.
_refused = False
#: The settings the placements were computed for, and the placements.
_placed: tuple[Any, list[tuple[str, tuple[str, ...] | None]]] | None = None


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
    if ensure_started() is None:
        return
    alias = getattr(getattr(job, "_state", None), "db", None)
    for worker in workers():
        if alias is None or worker.storage.alias == alias:
            worker.wake()  # sent after the enqueue's transaction committed: claim now


def _under_tests() -> bool:
    # Django's test environment (the test runner, pytest-django): tests run jobs with
    # django_jobs.testing, not behind their back. start() still works there.
    utils = sys.modules.get("django.test.utils")
    return utils is not None and hasattr(utils._TestState, "saved_data")


def _wanted() -> list[tuple[str, tuple[str, ...] | None]]:
    global _placed
    settings = jobs_settings()
    if _placed is None or _placed[0] is not settings:
        _placed = (settings, placements(settings.embedded))
    return _placed[1]


def workers() -> list[EmbeddedWorker]:
    """This process's running embedded workers, ``JOBS["DATABASE"]``'s first."""
    main = jobs_settings().main_database
    running = [worker for worker, _ in list(_running.values())]
    return sorted(running, key=lambda worker: worker.storage.alias != main)


def ensure_started() -> EmbeddedWorker | None:
    """The process's first embedded worker, once every one due is started (a worker
    that stopped is started again ``RETRY_AFTER`` seconds later)."""
    global _refused
    if _refused:
        return None
    wanted = _wanted()
    if len(_running) < len(wanted):
        if _under_tests():
            _refused = True
            return None
        _start(retrying=True)
    running = workers()
    return running[0] if running else None


def start() -> EmbeddedWorker:
    """Start this process's embedded workers, one per jobs database its queues live in
    (once; later calls start only those not running); returns the first."""
    _start(retrying=False)
    return workers()[0]


def _start(retrying: bool) -> None:
    options = jobs_settings().embedded
    main = jobs_settings().main_database
    with _lock:
        now = time.monotonic()
        for alias, queues in _wanted():
            if alias in _running or (retrying and now < _not_before.get(alias, 0.0)):
                continue
            worker = EmbeddedWorker(options, alias, queues)
            name = "django-jobs-embedded" + ("" if alias == main else f"-{alias}")
            thread = threading.Thread(target=_run, args=(worker,), name=name, daemon=True)
            _running[alias] = (worker, thread)
            thread.start()


def _run(worker: EmbeddedWorker) -> None:
    alias = worker.storage.alias
    try:
        worker.run()
    except Exception:
        logger.exception(
            "[jobs] the embedded worker of process %s on %s stopped", os.getpid(), alias
        )
    finally:
        with _lock:
            if _running.get(alias, (None,))[0] is worker:
                del _running[alias]
                _not_before[alias] = time.monotonic() + RETRY_AFTER


def stop(timeout: float | None = None) -> None:
    """Stop this process's embedded workers: running jobs have ``timeout`` seconds (else
    ``SHUTDOWN_TIMEOUT``) to end, then are given back unspent. Run at process exit."""
    global _refused
    with _lock:
        running = list(_running.values())
        _refused = True  # a request or enqueue from here on starts nothing
    if not running:
        return
    grace = jobs_settings().embedded.shutdown_timeout if timeout is None else timeout
    for worker, _ in running:
        worker.stopping.set()
        worker.wake()
    deadline = time.monotonic() + grace
    for _, thread in running:
        thread.join(max(0.0, deadline - time.monotonic()))
    late = [(worker, thread) for worker, thread in running if thread.is_alive()]
    for worker, _ in late:
        logger.warning(
            "[jobs] %s: jobs still running after %g s are given back unspent",
            worker.identity, grace,
        )  # fmt: skip
        worker.immediate = True
        worker.wake()
    deadline = time.monotonic() + RECORD_WITHIN
    for _, thread in late:
        thread.join(max(0.0, deadline - time.monotonic()))


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
    """In a forked child: the parent's worker threads did not come along. The child starts
    its own on its first request or enqueue."""
    global _lock, _running, _not_before, _refused
    running = list(_running.values())
    _lock = threading.Lock()
    _running, _not_before = {}, {}
    _refused = False
    for worker, _ in running:
        for fd in (worker.wake_r, worker.wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


atexit.register(stop)
os.register_at_fork(after_in_child=_forget_after_fork)
