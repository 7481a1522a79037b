"""One worker process: claim a batch → run it → record outcomes in a batch → wait or wake.

The main thread claims, runs sync jobs itself when the group has one thread (the fast
path), hands them to a thread pool otherwise, and hands ``async def`` jobs to an event
loop thread. What the worker holds lives in its :class:`~.ledger.Ledger`. Starts and
outcomes are written in batches: by the main thread before it waits, stops or claims
again, and by the flusher thread whenever something has waited ``FLUSH_INTERVAL``,
whatever the main thread is doing. See docs/explanation/worker.md for the guarantees.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
import time
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, connections

from .. import clock, discovery, joblog, signals, tracing
from ..conf import WorkerGroup, jobs_settings, use_database
from ..context import JobContext
from ..executor import Call, Interrupted, outcome_of, run_sync
from ..pausing import claim_filter, paused_among
from ..progress import ProgressWriter
from ..registry import declares_limits
from ..storage import ClaimedJob, Outcome, get_storage, use_worker_connections
from ..storage.waiting import drain
from .controls import Controls
from .flusher import FLUSH_INTERVAL, Flusher
from .heartbeat import HeartbeatThread, deregister, identity_for, new_instance, register
from .ledger import Ledger
from .recycling import Recycling
from .resilience import DatabaseRetry
from .runners import AsyncRunner, Ended, ThreadRunner
from .watchdog import Watchdog

logger = logging.getLogger("django_jobs.worker")

#: Prefetch at most this many seconds of estimated work beyond the free slots.
CLAIM_WINDOW = 0.05
#: The longest a worker with busy slots waits to gather free ones into one claim.
REFILL_WAIT = 0.02
#: Async slots count towards a claim while an async job was among this many last claimed.
ASYNC_MEMORY = 50
#: Once a claim found fewer ready jobs than it asked for, outcomes wait at most this long
#: to be written, not FLUSH_INTERVAL: the jobs still running are the last of the queue,
#: and whoever waits for them (a drain, a caller's result) should not wait for the flusher.
TAIL_FLUSH = 0.005


class Worker:
    def __init__(
        self,
        group: WorkerGroup,
        worker_id: str | int,
        *,
        workoff: bool = False,
        identity: str | None = None,
        instance: str | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.group = group
        self.identity = identity or identity_for(group, worker_id, instance or new_instance())
        self.storage = get_storage(group.database)
        self.workoff = workoff
        self.on_outcome = on_outcome
        self.stopping = threading.Event()
        self.immediate = False
        self.ledger = Ledger()
        #: Job names that ran to an end in this process (see _dispatch).
        self.proven: set[str] = set()
        #: One flush at a time, so starts and outcomes reach the table in order.
        self.flush_lock = threading.Lock()
        self.avg_duration: float | None = None
        self.in_inline_job = False
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.threads = ThreadRunner(group.threads, self.finished) if group.threads > 1 else None
        self.asyncs = AsyncRunner(group.async_concurrency, self.finished_many)
        # Claimed jobs since the last async one: async slots count only while async jobs
        # are actually arriving, so a sync-only queue is never claimed 10 jobs deep.
        self.since_async = ASYNC_MEMORY
        self.heartbeat = HeartbeatThread(self.identity, group, lambda: self.ledger.done)
        self.watchdog = Watchdog(self)
        self.flusher = Flusher(self)
        self.controls = Controls(self)
        self.progress = ProgressWriter(self.storage)
        self._waiter = None
        self.last_claim = 0.0
        self.refill_deferred = False
        #: The last claim found fewer ready jobs than it asked for.
        self.queue_empty = False
        self.recycling = Recycling(group, self.identity)
        self.db = DatabaseRetry(self.identity, self.wake_r, lambda: self.immediate)
        #: A claim failed with a database error: it may have locked rows all the same.
        self.claim_uncertain = False
        #: Set by a supervisor: when our parent is no longer this pid, stop gracefully.
        self.supervisor_pid: int | None = None
        #: A job failed and took the jobs connection down with it: the database may be
        #: gone, so run nothing more until a write succeeds (each would spend an attempt).
        self.db_suspect = False

    @property
    def jobs_done(self) -> int:
        return self.ledger.done

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> int:
        """Work until stopped (or, with ``workoff``, until nothing is ready); exit code."""
        use_worker_connections()
        joblog.worker = self.identity
        self.storage.prepare_worker_connection()
        # Count slots from the first claim rather than after meeting a limited row.
        self.storage.limited = self.storage.limited or declares_limits()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            # Before registering: a stop signal that arrives once the worker is visible
            # in the table must find a handler, not end the process mid-start.
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            register(self.identity, self.group)
            # Listening starts before the first claim, so no job can fall between the two.
            self._waiter = self.storage.waiter(self.group.queues)
            self._waiter.start()
            # Paused queues are known before the first claim.
            self.controls.prime()
            self.controls.start()
            self.heartbeat.start()
            self.watchdog.start()
            self.flusher.start()
            logger.info("[jobs] worker %s started (pid %s)", self.identity, os.getpid())
            try:
                self._loop()
            except Interrupted:
                self.immediate = True
            finally:
                self._shutdown()
        finally:
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
        self.controls.stop()
        self.heartbeat.stop()
        self.watchdog.stop()
        self.flusher.stop()
        self.flusher.join(timeout=5)
        drain(self.wake_r)
        unrun = self.ledger.take_pending()
        if self.immediate:
            unrun += self.ledger.take_running()
        # A few tries even when stopping at once: the interrupted job may have broken
        # the connection, and DatabaseRetry replaces it.
        self.db.run(lambda: self._give_back(unrun), attempts=3)
        self.db.run(self.flush, attempts=3)
        try:
            deregister(self.identity, self.storage.alias)
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("could not deregister %s: %s", self.identity, exc)
        if self.threads:
            self.threads.shutdown(wait=not self.immediate)
        self.asyncs.shutdown()
        self.progress.shutdown()
        if self._waiter is not None:
            self._waiter.close()  # PostgreSQL: its own LISTEN connection
        os.close(self.wake_r)
        os.close(self.wake_w)
        logger.info("[jobs] worker %s stopped", self.identity)
        connections.close_all()

    def _give_back(self, jobs: list[ClaimedJob]) -> None:
        if jobs:
            signals.release(self.storage, jobs, clock.now())

    # -- the loop --------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            drain(self.wake_r)
            if self.immediate:
                return
            if self._orphaned():
                self.stopping.set()
            if self.stopping.is_set():
                self.db.run(lambda: self._give_back(self.ledger.take_pending()))
                if not self.ledger.running:
                    return
                self._wait_for_running()
                continue
            if self.recycling.due(self.ledger.done):
                self.stopping.set()
                continue
            claimed = self.db.run(self._fill)
            self._dispatch()
            if self.ledger.busy():
                if self.db_suspect and self.ledger.unwritten_for():
                    self.db.run(self.flush)
                elif self.queue_empty and self.ledger.outcomes_wait() >= TAIL_FLUSH:
                    self.db.run(self.flush_settled)
                self._wait_for_running()
                continue
            self.db.run(self.flush)
            if claimed:
                continue
            if self.workoff:
                return
            self._idle()

    def _free_slots(self) -> int:
        # Inline jobs (one thread) are never running while the loop claims.
        sync_busy = self.threads.running if self.threads is not None else 0
        free = max(self.group.threads - sync_busy, 0)
        if self.since_async < ASYNC_MEMORY:
            free += max(self.group.async_concurrency - self.asyncs.running, 0)
        return free

    def _refill_later(self, free: int) -> bool:
        """With many slots busy, wait for a quarter of them to free up (or REFILL_WAIT):
        one claim of 60 jobs instead of 60 claims of one, when short jobs end one by one."""
        self.refill_deferred = False
        if not self.ledger.running:
            return False
        capacity = self.group.threads + (
            self.group.async_concurrency if self.since_async < ASYNC_MEMORY else 0
        )
        self.refill_deferred = (
            free < capacity // 4 and time.monotonic() - self.last_claim < REFILL_WAIT
        )
        return self.refill_deferred

    def _claim_size(self, free: int) -> int:
        # Claim more than the free slots only for jobs known to be short, so that the
        # extra ones start within CLAIM_WINDOW; the flusher gives back any that wait
        # longer than HOLD_LIMIT (a long job among them), for another worker to run.
        if self.avg_duration is None or self.storage.rated:
            # A rate limit grants starts at the claim: a row claimed to wait behind
            # others would start later than its grant says, so take only what starts now.
            return free
        extra = int(CLAIM_WINDOW / max(self.avg_duration, 1e-6))
        return min(self.group.batch_size, max(free, extra))

    def _fill(self) -> bool:
        if self.ledger.pending or self.stopping.is_set():
            return False
        if self.claim_uncertain:
            self._release_unknown()
        free = self._free_slots()
        if free <= 0 or self._refill_later(free):
            return False
        size = self._claim_size(free)
        limit = self.recycling.claim_limit(self.ledger.done, self.ledger.running)
        if limit is not None:
            # Never hold more jobs than this process will run before it is recycled.
            size = min(size, limit)
            if size <= 0:
                return False
        selection = claim_filter(self.group.queues, self.controls.paused)
        if selection is None:
            return False  # every queue it serves is paused
        queues, exclude = selection
        self.last_claim = time.monotonic()
        try:
            claimed = self.storage.claim(self.identity, queues, size, clock.now(), exclude)
        except (DatabaseError, InterfaceError):
            self.claim_uncertain = True
            raise
        self.queue_empty = len(claimed) < size
        # Jobs their rate limit lets start only a moment from now go last: the others
        # start at once instead of waiting behind them.
        claimed.sort(key=lambda job: job.not_before or 0.0)
        calls = [Call(job, self._context) for job in claimed]
        # Whether jobs run in spans is asked once per claim, not once per job.
        traced = tracing.enabled()
        for call in calls:
            call.traced = traced
        if any(call.is_async for call in calls):
            self.since_async = len(calls) - 1 - max(i for i, c in enumerate(calls) if c.is_async)
        else:
            self.since_async += len(calls)
        self.ledger.add(calls)
        return bool(claimed)

    def _has_slot(self, call: Call) -> bool:
        if not self._may_start(call):
            return False
        if call.is_async:
            return self.asyncs.running < self.group.async_concurrency
        if self.threads is not None:
            return self.threads.running < self.group.threads
        return True

    def _may_start(self, call: Call) -> bool:
        """Whether a claimed job may start now, free slots aside."""
        if self.stopping.is_set() or self.db_suspect:
            return False
        not_before = call.claimed.not_before
        if not_before is not None and not_before > time.time():
            return False  # its rate limit granted it a start a moment from now
        # A claim made before a gap in the heartbeats may have been recovered and run
        # elsewhere: the flusher gives such a job back (its claim token guards it).
        return self.heartbeat.vouches_for(call.claimed_at)

    def _dispatch(self) -> None:
        try:
            while (call := self.ledger.start_next(self._has_slot)) is not None:
                if call.claimed.name not in self.proven:
                    # The first job of a name in this process has its start written before
                    # it runs: if it brings the process down (a segfault, os._exit, the OOM
                    # killer), recovery charges it an attempt instead of handing it back
                    # unspent forever. Later jobs of the name ride on batched writes.
                    self.asyncs.send()
                    self.db.run(self.flush)
                if call.context is not None and call.timeout:
                    call.context.deadline = call.started + call.timeout
                if call.is_async:
                    self.asyncs.submit(call)
                elif self.threads is not None:
                    self.threads.submit(call)
                else:
                    self.asyncs.send()  # before a sync job holds this thread
                    self._run_inline(call)
        finally:
            # Every async job started in this pass reaches the event loop in one batch.
            self.asyncs.send()

    def _run_inline(self, call: Call) -> None:
        self.in_inline_job = True
        try:
            error = run_sync(call)
        except KeyboardInterrupt as exc:
            # Stop signals reach this loop as Interrupted (_on_signal): a KeyboardInterrupt
            # was raised by the job itself. It is the job's error, as in runner threads.
            error = exc
        finally:
            self.in_inline_job = False
        self._record(call, error)

    def finished(self, call: Call, error: BaseException | None) -> None:
        """Called from runner threads when a job ends."""
        self._record(call, error)
        self.wake()

    def finished_many(self, ended: list[Ended]) -> None:
        """Called from the event loop's thread with the async jobs that ended in one pass
        of the loop: their outcomes are buffered together, and this thread is woken once."""
        recorded = self.ledger.finish_many(
            [(call, self._outcome(call, error)) for call, error in ended]
        )
        if self.on_outcome is not None:
            for outcome in recorded:
                self.on_outcome(outcome)
        self.wake()

    def _record(self, call: Call, error: BaseException | None) -> None:
        outcome = self._outcome(call, error)
        if self.ledger.finish(call, outcome) and self.on_outcome is not None:
            self.on_outcome(outcome)

    def _outcome(self, call: Call, error: BaseException | None) -> Outcome:
        outcome = outcome_of(call, error)
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
        self.proven.add(call.claimed.name)  # it ran and returned: it does not kill us
        return outcome

    def time_limit(self, call: Call) -> float:
        """The job's own timeout, else the group's MAX_RUNTIME: what the watchdog enforces."""
        return call.timeout or self.group.max_runtime

    def flush(self, started_before: float | None = None) -> None:
        """Write the starts and outcomes not written yet, in one batch; then send the
        outcome signals of what was written (outside the lock: receivers may be slow).

        ``started_before``: write only the starts of jobs that began by then (monotonic;
        see :meth:`.Ledger.take_writes`)."""
        report = signals.listening()
        with self.flush_lock:
            writes = self.ledger.take_writes(self.time_limit, started_before)
            if not writes:
                if self.db_suspect and threading.current_thread() is not self.flusher:
                    # Nothing to write: prove the main connection works before running more.
                    self.storage.connection.ensure_connection()
                    self.db_suspect = False
                return
            try:
                now = clock.now()
                if writes.marks:
                    self.storage.mark_started(writes.marks, now)
                written = len(writes.outcomes)
                if writes.outcomes:
                    written = self.storage.record(writes.outcomes, now, report=report)
            except BaseException:
                self.ledger.restore(writes)
                raise
        if written < len(writes.outcomes):
            # The claim token fenced them off: another worker took those jobs over while
            # this one looked dead (cut off, frozen) and may have run them again.
            logger.warning(
                "[jobs] %s: %s outcome(s) refused: their jobs were taken over while this "
                "worker looked dead", self.identity, len(writes.outcomes) - written,
            )  # fmt: skip
        self.db_suspect = False
        if report and writes.outcomes:
            signals.ended(writes.outcomes)

    def flush_settled(self) -> None:
        """Write the outcomes waiting, and the starts of jobs running for a flusher tick
        (see :meth:`.Ledger.take_writes`)."""
        self.flush(started_before=time.monotonic() - FLUSH_INTERVAL / 2)

    def _wait_for_running(self) -> None:
        timeout = FLUSH_INTERVAL if self.ledger.unwritten_for() else 1.0
        waited = self.ledger.outcomes_wait()
        if self.queue_empty and waited:
            timeout = min(timeout, max(TAIL_FLUSH - waited, 0.0))
        if self.refill_deferred:
            timeout = min(timeout, REFILL_WAIT)
        not_before = self.ledger.next_not_before()
        if not_before is not None and not_before > time.time():
            timeout = min(timeout, not_before - time.time())
        elif self.storage.limited and not self.stopping.is_set() and self._free_slots() > 0:
            # Rows waiting for their rate limit come due at their run_at: claim them then
            # with the free slots, not after the longest job ends.
            try:
                timeout = self._until_due(timeout)
            except (DatabaseError, InterfaceError):
                pass  # the next claim meets the outage and reports it
        readable, _, _ = select.select([self.wake_r], [], [], timeout)
        if readable:
            drain(self.wake_r)

    def _idle(self) -> None:
        try:
            # Nothing notifies when a retry or a delayed job comes due: wake for it.
            timeout = self._until_due(self.group.sleep_delay)
            self._waiter.paused = frozenset(paused_among(self.group.queues, self.controls.paused))
            self._waiter.wait(timeout, self.wake_r)
        except (DatabaseError, InterfaceError) as exc:
            self.db.down(exc, 0)

    def _until_due(self, timeout: float) -> float:
        """Seconds until the next scheduled job of the worker's queues comes due (a retry,
        a delayed job, a job waiting for its rate limit), at most ``timeout``."""
        now = clock.now()
        paused = paused_among(self.group.queues, self.controls.paused)
        due = self.storage.next_due(self.group.queues, now, paused)
        if due is None:
            return timeout
        return max(0.0, min(timeout, (due - now).total_seconds()))

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

    def cancel_requested(self, ids: set[int]) -> None:
        """From the control thread: jobs this worker holds whose cancellation was asked for.

        Those not started are given back, which ends them cancelled; running ones are told
        to stop, and the watchdog stops the process if they still run after the grace.
        """
        waiting = self.ledger.take_pending_ids(ids)
        if waiting:
            try:
                signals.release(self.storage, [call.claimed for call in waiting], clock.now())
            except BaseException:
                self.ledger.put_back(waiting)
                raise
            for call in waiting:
                logger.warning(
                    "[jobs] [%s] job %s cancelled before it started",
                    call.claimed.name, call.claimed.id,
                )  # fmt: skip
        grace = jobs_settings().cancel_grace
        for call in self.ledger.mark_cancelled(ids):
            logger.warning(
                "[jobs] [%s] job %s cancelled while running: it has %g s to stop before "
                "worker %s is stopped",
                call.claimed.name, call.claimed.id, grace, self.identity,
            )  # fmt: skip

    def _release_unknown(self) -> None:
        """Give back rows a failed claim locked for us although we never received them."""
        known = self.ledger.known_ids()
        lost = [row.job for row in self.storage.held_by(self.identity) if row.job.id not in known]
        if lost:
            logger.warning(
                "[jobs] %s: giving back %s job(s) claimed while the database went away",
                self.identity, len(lost),
            )  # fmt: skip
            self._give_back(lost)
        self.claim_uncertain = False

    def _context(self, claimed: ClaimedJob, definition) -> JobContext:
        return JobContext(
            job_id=claimed.id,
            name=claimed.name,
            attempt=claimed.attempts,
            stopping=self.stopping,
            report=self.progress.reporter(claimed),
            publisher=self.progress.publisher(claimed),
            database=self.storage.alias,
        )


def run_worker(
    group_index: int, worker_id: str | int, *, workoff: bool = False, instance: str | None = None
) -> int:
    """Entry point of ``manage.py jobs worker``: one worker process of one group."""
    groups = jobs_settings().workers
    if not 0 <= group_index < len(groups):
        raise ValueError(
            f"there is no worker group {group_index} (JOBS['WORKERS'] has {len(groups)})"
        )
    from .proctitle import prepare_worker_process

    group = groups[group_index]
    # Claims, heartbeats, recovery and controls of this process: the group's database.
    use_database(group.database)
    # Every worker knows the jobs declared while Django loaded: one declared later, by a
    # running job's import, would be known here and nowhere else.
    discovery.seal(f"worker {worker_id} of group {group_index}")
    supervisor_pid = prepare_worker_process(group, worker_id)
    worker = Worker(group, worker_id, workoff=workoff, instance=instance)
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
