"""One worker process: claim a batch → run it → record outcomes in a batch → wait or wake.

The main thread claims, runs sync jobs itself when the group has one thread (the fast
path), hands them to a thread pool otherwise, and hands ``async def`` jobs to an event
loop thread. Outcomes are written in batches, and always before the worker waits, stops
or claims again. See docs/explanation/worker.md for the guarantees.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, connections

from .. import clock
from ..conf import WorkerGroup, jobs_settings
from ..context import JobContext
from ..executor import Call, Interrupted, outcome_of, run_sync
from ..storage import ClaimedJob, Outcome, get_storage
from .heartbeat import HeartbeatThread, deregister, identity_for, register
from .recycling import Recycling
from .resilience import DatabaseRetry
from .runners import AsyncRunner, ThreadRunner
from .watchdog import Watchdog

logger = logging.getLogger("django_jobs.worker")

#: Prefetch at most this many seconds of estimated work beyond the free slots.
CLAIM_WINDOW = 0.05
#: Write buffered outcomes at least this often while jobs are still running.
FLUSH_INTERVAL = 0.05
#: The longest a worker with busy slots waits to gather free ones into one claim.
REFILL_WAIT = 0.02
#: Async slots count towards a claim while an async job was among this many last claimed.
ASYNC_MEMORY = 50


class Worker:
    def __init__(
        self,
        group: WorkerGroup,
        worker_id: str | int,
        *,
        workoff: bool = False,
        identity: str | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.group = group
        self.identity = identity or identity_for(group, worker_id)
        self.storage = get_storage()
        self.workoff = workoff
        self.on_outcome = on_outcome
        self.stopping = threading.Event()
        self.immediate = False
        self.lock = threading.Lock()
        self.pending: deque[Call] = deque()
        self.inflight: dict[int, Call] = {}
        self.buffered: list[Outcome] = []
        self.oldest_buffered = 0.0
        self.jobs_done = 0
        self.avg_duration: float | None = None
        self.in_inline_job = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.threads = ThreadRunner(group.threads, self.finished) if group.threads > 1 else None
        self.asyncs = AsyncRunner(group.async_concurrency, self.finished)
        # Claimed jobs since the last async one: async slots count only while async jobs
        # are actually arriving, so a sync-only queue is never claimed 10 jobs deep.
        self.since_async = ASYNC_MEMORY
        self.heartbeat = HeartbeatThread(self.identity, group, lambda: self.jobs_done)
        self.watchdog = Watchdog(self)
        self._waiter = None
        self.last_claim = 0.0
        self.refill_deferred = False
        self.recycling = Recycling(group, self.identity)
        self.db = DatabaseRetry(self.identity, self.wake_r, lambda: self.immediate)
        #: A claim failed with a database error: it may have locked rows all the same.
        self.claim_uncertain = False
        #: Set by a supervisor: when our parent is no longer this pid, stop gracefully.
        self.supervisor_pid: int | None = None
        #: A job failed and took the jobs connection down with it: the database may be
        #: gone, so run nothing more until a write succeeds (each would spend an attempt).
        self.db_suspect = False

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, with ``workoff``, until nothing is ready); exit code."""
        self.storage.prepare_worker_connection()
        register(self.identity, self.group)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        # Listening starts before the first claim, so no job can fall between the two.
        self._waiter = self.storage.waiter(self.group.queues)
        self._waiter.start()
        self.heartbeat.start()
        self.watchdog.start()
        logger.info("[jobs] worker %s started (pid %s)", self.identity, os.getpid())
        try:
            self._loop()
        except Interrupted:
            self.immediate = True
        finally:
            self._shutdown()
            # In-process use (workoff, tests) hands the signals back to their owner.
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self.stopping.is_set():
            logger.info("[jobs] %s: stopping after running jobs finish", self.identity)
            self.stopping.set()
            self.wake()
            return
        logger.info("[jobs] %s: stopping now; running jobs will run again", self.identity)
        self.immediate = True
        self.wake()
        if self.in_inline_job:
            raise Interrupted()

    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except OSError:  # the pipe is full (a wake-up is pending anyway) or closed
            pass

    def _shutdown(self) -> None:
        self.heartbeat.stop()
        self.watchdog.stop()
        self._collect()
        with self.lock:
            unrun = [call.claimed.id for call in self.pending]
            self.pending.clear()
            if self.immediate:
                unrun += list(self.inflight)
                self.inflight.clear()
        # A few tries even when stopping at once: the interrupted job may have broken
        # the connection, and DatabaseRetry replaces it.
        self.db.run(lambda: self._give_back(unrun), attempts=3)
        self.db.run(self.flush, attempts=3)
        try:
            deregister(self.identity)
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("could not deregister %s: %s", self.identity, exc)
        if self.threads:
            self.threads.shutdown(wait=not self.immediate)
        self.asyncs.shutdown()
        if self._waiter is not None:
            self._waiter.close()  # PostgreSQL: its own LISTEN connection
        os.close(self.wake_r)
        os.close(self.wake_w)
        logger.info("[jobs] worker %s stopped", self.identity)
        connections.close_all()

    def _give_back(self, job_ids: list[int]) -> None:
        if job_ids:
            self.storage.release(self.identity, job_ids, clock.now())

    # -- the loop --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._collect()
            if self.immediate:
                return
            if self._orphaned():
                self.stopping.set()
            if self.stopping.is_set():
                self._release_pending()
                if not self.inflight:
                    return
                self._wait_for_running()
                continue
            if self.recycling.due(self.jobs_done):
                self.stopping.set()
                continue
            claimed = self.db.run(self._fill)
            self._dispatch()
            if self._busy():
                if self.buffered and (
                    self.db_suspect or time.monotonic() - self.oldest_buffered > FLUSH_INTERVAL
                ):
                    self.db.run(self.flush)
                self._wait_for_running()
                continue
            self.db.run(self.flush)
            if claimed:
                continue
            if self.workoff:
                return
            self._idle()

    def _busy(self) -> bool:
        return bool(self.pending or self.inflight)

    def _free_slots(self) -> int:
        # Inline jobs (one thread) are never in flight while the loop claims.
        sync_busy = self.threads.running if self.threads is not None else 0
        free = max(self.group.threads - sync_busy, 0)
        if self.since_async < ASYNC_MEMORY:
            free += max(self.group.async_concurrency - self.asyncs.running, 0)
        return free

    def _refill_later(self, free: int) -> bool:
        """With many slots busy, wait for a quarter of them to free up (or REFILL_WAIT):
        one claim of 60 jobs instead of 60 claims of one, when short jobs end one by one."""
        self.refill_deferred = False
        if not self.inflight:
            return False
        capacity = self.group.threads + (
            self.group.async_concurrency if self.since_async < ASYNC_MEMORY else 0
        )
        self.refill_deferred = (
            free < capacity // 4 and time.monotonic() - self.last_claim < REFILL_WAIT
        )
        return self.refill_deferred

    def _claim_size(self, free: int) -> int:
        # Claim more than the free slots only for jobs known to be short, so that a worker
        # never holds work that another idle worker could be running.
        if self.avg_duration is None:
            return free
        extra = int(CLAIM_WINDOW / max(self.avg_duration, 1e-6))
        return min(self.group.batch_size, max(free, extra))

    def _fill(self) -> bool:
        if self.pending or self.stopping.is_set():
            return False
        if self.claim_uncertain:
            self._release_unknown()
        free = self._free_slots()
        if free <= 0 or self._refill_later(free):
            return False
        size = self._claim_size(free)
        limit = self.recycling.claim_limit(self.jobs_done, len(self.inflight))
        if limit is not None:
            # Never hold more jobs than this process will run before it is recycled.
            size = min(size, limit)
            if size <= 0:
                return False
        self.last_claim = time.monotonic()
        try:
            claimed = self.storage.claim(self.identity, self.group.queues, size, clock.now())
        except (DatabaseError, InterfaceError):
            self.claim_uncertain = True
            raise
        for job in claimed:
            call = Call(job, self._context)
            self.since_async = 0 if call.is_async else self.since_async + 1
            self.pending.append(call)
        return bool(claimed)

    def _dispatch(self) -> None:
        while self.pending and not self.stopping.is_set() and not self.db_suspect:
            call = self.pending[0]
            if call.is_async:
                if self.asyncs.running >= self.group.async_concurrency:
                    return
                self.pending.popleft()
                self._start(call)
                self.asyncs.submit(call)
            elif self.threads is not None:
                if self.threads.running >= self.group.threads:
                    return
                self.pending.popleft()
                self._start(call)
                self.threads.submit(call)
            else:
                self.pending.popleft()
                self._start(call)
                self._run_inline(call)

    def _start(self, call: Call) -> None:
        call.started = time.monotonic()
        if call.context is not None and call.timeout:
            call.context.deadline = call.started + call.timeout
        with self.lock:
            self.inflight[call.claimed.id] = call

    def _run_inline(self, call: Call) -> None:
        self.in_inline_job = True
        try:
            error = run_sync(call)
        finally:
            self.in_inline_job = False
        self._record(call, error)

    def finished(self, call: Call, error: BaseException | None) -> None:
        """Called from runner threads when a job ends."""
        self._record(call, error)
        self.wake()

    def _record(self, call: Call, error: BaseException | None) -> None:
        outcome = outcome_of(call, error, self.group)
        duration = time.monotonic() - call.started
        self.avg_duration = (
            duration if self.avg_duration is None else 0.8 * self.avg_duration + 0.2 * duration
        )
        if (
            isinstance(error, DatabaseError | InterfaceError)
            and not call.is_async
            and self.storage.connection.connection is None
        ):
            self.db_suspect = True  # tidy_connections closed it: it was unusable
        with self.lock:
            if self.inflight.pop(call.claimed.id, None) is None:
                return  # given back already (immediate stop or timeout)
            if not self.buffered:
                self.oldest_buffered = time.monotonic()
            self.buffered.append(outcome)
            self.jobs_done += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _collect(self) -> None:
        from ..storage.base import drain

        drain(self.wake_r)

    def flush(self) -> None:
        """Write buffered outcomes in one batch."""
        with self.lock:
            outcomes, self.buffered = self.buffered, []
        if not outcomes:
            if self.db_suspect:
                self.storage.connection.ensure_connection()
                self.db_suspect = False
            return
        try:
            self.storage.record(
                self.identity,
                outcomes,
                clock.now(),
                keep_succeeded=not self.group.delete_successful_jobs,
                delete_failed=self.group.delete_failed_jobs,
            )
        except BaseException:
            with self.lock:
                self.buffered = outcomes + self.buffered
            raise
        self.db_suspect = False

    def _release_pending(self) -> None:
        with self.lock:
            ids = [call.claimed.id for call in self.pending]
            self.pending.clear()
        self.db.run(lambda: self._give_back(ids))

    def _wait_for_running(self) -> None:
        import select

        timeout = FLUSH_INTERVAL if self.buffered else 1.0
        if self.refill_deferred:
            timeout = min(timeout, REFILL_WAIT)
        readable, _, _ = select.select([self.wake_r], [], [], timeout)
        if readable:
            self._collect()

    def _idle(self) -> None:
        try:
            self._waiter.wait(self.group.sleep_delay, self.wake_r)
        except (DatabaseError, InterfaceError) as exc:
            self.db.down(exc, 0)

    def _orphaned(self) -> bool:
        if self.supervisor_pid is None or self.stopping.is_set():
            return False
        if os.getppid() == self.supervisor_pid:
            return False
        logger.warning(
            "[jobs] %s: its supervisor (pid %s) is gone: stopping after running jobs finish",
            self.identity, self.supervisor_pid,
        )  # fmt: skip
        return True

    def _release_unknown(self) -> None:
        """Give back rows a failed claim locked for us although we never received them."""
        from ..models import Job

        with self.lock:
            known = set(self.inflight) | {call.claimed.id for call in self.pending}
            known |= {outcome.job.id for outcome in self.buffered}
        held = Job.objects.using(self.storage.alias).filter(locked_by=self.identity)
        lost = [pk for pk in held.values_list("pk", flat=True) if pk not in known]
        if lost:
            logger.warning(
                "[jobs] %s: giving back %s job(s) claimed while the database went away",
                self.identity, len(lost),
            )  # fmt: skip
            self._give_back(lost)
        self.claim_uncertain = False

    def _context(self, claimed: ClaimedJob, definition) -> JobContext:
        storage, identity = self.storage, self.identity
        return JobContext(
            job_id=claimed.id,
            name=claimed.name,
            attempt=claimed.attempts,
            stopping=self.stopping,
            report=lambda percent, message: storage.set_progress(
                identity, claimed.id, percent, message
            ),
        )


def run_worker(group_index: int, worker_id: str | int, *, workoff: bool = False) -> int:
    """Entry point of ``manage.py jobs worker``: one worker process of one group."""
    groups = jobs_settings().workers
    if not 0 <= group_index < len(groups):
        raise ValueError(
            f"there is no worker group {group_index} (JOBS['WORKERS'] has {len(groups)})"
        )
    from .proctitle import prepare_worker_process

    group = groups[group_index]
    supervisor_pid = prepare_worker_process(group, worker_id)
    worker = Worker(group, worker_id, workoff=workoff)
    worker.supervisor_pid = supervisor_pid
    code = worker.run()
    if worker.immediate and any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        # Jobs still running in pool threads were given back; the interpreter would wait
        # for them at exit. Stopping at once means now.
        logging.shutdown()
        os._exit(code)
    return code
