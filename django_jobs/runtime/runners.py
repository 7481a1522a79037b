"""Where jobs run besides the worker's main thread: a thread pool and an event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

from ..executor import Call, run_async, run_sync

Finished = Callable[[Call, BaseException | None], None]
#: A job that ended, with the exception it raised (None: it returned).
Ended = tuple[Call, BaseException | None]
T = TypeVar("T")
#: Stands for the task of a job submitted to the loop but not started there yet.
_WAITING = object()


def _give_up(runner: ThreadRunner | AsyncRunner, holders: dict[int, T], call: Call) -> T | None:
    """Under the runner's lock: take what runs ``call`` (its thread, its task) out of
    ``holders``, free its slot, and mark its end as not to be reported. None when it
    has ended meanwhile."""
    held = holders.pop(call.claimed.id, None)
    if held is not None:
        runner.abandoned.add(call.claimed.id)
        runner.running -= 1
    return held


class ThreadRunner:
    """Runs sync jobs on ``size`` threads, each with its own database connections.

    A plain queue of threads rather than ThreadPoolExecutor: each thread must close its
    own connections when the pool stops, which an executor gives no hook for.
    """

    def __init__(self, size: int, finished: Finished) -> None:
        self.finished = finished
        self.running = 0
        self.lock = threading.Lock()
        self.calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        #: Job ids whose threads were given up on (``abandon``), still running their job.
        self.abandoned: set[int] = set()
        #: The thread running each job id.
        self.current: dict[int, threading.Thread] = {}
        self.threads = [self._thread(i) for i in range(size)]
        for thread in self.threads:
            thread.start()

    def _thread(self, number: int) -> threading.Thread:
        return threading.Thread(target=self._serve, name=f"django-jobs-{number}", daemon=True)

    def submit(self, call: Call) -> None:
        with self.lock:
            self.running += 1
        self.calls.put(call)

    def _serve(self) -> None:
        try:
            while (call := self.calls.get()) is not None:
                self.current[call.claimed.id] = threading.current_thread()
                try:
                    error = run_sync(call)
                except BaseException as exc:
                    # Signals reach the main thread only: a KeyboardInterrupt (or
                    # Interrupted) here was raised by the job itself. It is the job's
                    # error; the thread and its slot live on.
                    error = exc
                with self.lock:
                    self.current.pop(call.claimed.id, None)
                    if call.claimed.id in self.abandoned:
                        # Its outcome was recorded and its place taken: this thread ends.
                        self.abandoned.discard(call.claimed.id)
                        return
                    self.running -= 1
                self.finished(call, error)
        finally:
            connections.close_all()

    def abandon(self, call: Call) -> None:
        """Give up on the thread running ``call`` (past its timeout: Python cannot stop
        a thread): its slot is free at once, a fresh thread takes its place, and the
        old one ends, unheard, whenever the job returns."""
        with self.lock:
            stuck = _give_up(self, self.current, call)
            if stuck is None:
                return  # it returned meanwhile and freed its slot
            self.threads.remove(stuck)
            thread = self._thread(len(self.threads) + len(self.abandoned))
            self.threads.append(thread)
        thread.start()

    def shutdown(self, wait: bool = True) -> None:
        for _ in self.threads:
            self.calls.put(None)
        if wait:
            for thread in self.threads:
                thread.join()


class AsyncRunner:
    """Runs ``async def`` jobs concurrently on one event loop in a background thread.

    Jobs cross between threads in batches, never one by one: the jobs that ``submit``
    gathered reach the loop in one ``call_soon_threadsafe`` (``send``), and the jobs
    that ended during one pass of the loop are reported together, in one call of
    ``finished``. A hand-off between threads costs a system call and, in CPython, a
    wait for the other thread to let go of the interpreter: per job, that was the
    largest cost of a 10 ms ``async`` job.
    """

    def __init__(self, limit: int, finished: Callable[[list[Ended]], None]) -> None:
        self.limit = limit
        self.finished = finished
        self.running = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        #: The task running each job id; _WAITING until the loop has started it.
        self.tasks: dict[int, asyncio.Task[None] | object] = {}
        self.abandoned: set[int] = set()
        #: Submitted, not sent to the loop yet (the worker's thread only).
        self._outbox: list[Call] = []
        #: Ended during this pass of the loop, not reported yet (the loop's thread only).
        self._ended: list[Ended] = []
        #: Counts of crossings, for tests and the benchmark: batches sent, reports made.
        self.sends = self.reports = 0

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(
                target=self.loop.run_forever, name="django-jobs-async", daemon=True
            )
            self.thread.start()
        return self.loop

    def submit(self, call: Call) -> None:
        """Take a slot for ``call`` now; it reaches the loop with the next ``send``."""
        with self.lock:
            self.running += 1
            self.tasks[call.claimed.id] = _WAITING
        self._outbox.append(call)

    def send(self) -> None:
        """Hand the submitted jobs to the loop, all in one crossing."""
        if not self._outbox:
            return
        calls, self._outbox = self._outbox, []
        self.sends += 1
        self._ensure_loop().call_soon_threadsafe(self._start, calls)

    def _start(self, calls: list[Call]) -> None:
        loop = self.loop
        with self.lock:
            for call in calls:
                job_id = call.claimed.id
                if job_id in self.abandoned:  # given up on before it could start
                    self.abandoned.discard(job_id)
                    continue
                self.tasks[job_id] = loop.create_task(self._run(call))

    async def _run(self, call: Call) -> None:
        try:
            error = await run_async(call)
        except BaseException as exc:
            # A hook or signal receiver that raised (the job's own errors are caught
            # by run_async), or the cancellation of an abandoned task: either way the
            # loop, and the worker, live on.
            error = exc
        if not self._ended:
            self.loop.call_soon(self._report)
        self._ended.append((call, error))

    def _report(self) -> None:
        ended, self._ended = self._ended, []
        with self.lock:
            heard = []
            for call, error in ended:
                job_id = call.claimed.id
                if job_id in self.abandoned:
                    self.abandoned.discard(job_id)  # its outcome was recorded elsewhere
                    continue
                del self.tasks[job_id]
                heard.append((call, error))
            self.running -= len(heard)
        if heard:
            self.reports += 1
            self.finished(heard)

    def abandon(self, call: Call) -> None:
        """Cancel ``call``'s task (past its timeout) and free its slot at once; whatever
        the task does with the cancellation goes unheard."""
        with self.lock:
            task = _give_up(self, self.tasks, call)
        if isinstance(task, asyncio.Task):  # else it ended meanwhile, or never started
            self.loop.call_soon_threadsafe(task.cancel)

    def shutdown(self) -> None:
        if self.loop is not None:
            # Async jobs reach the ORM through sync_to_async's thread: close its connections.
            closing = asyncio.run_coroutine_threadsafe(
                sync_to_async(connections.close_all)(), self.loop
            )
            try:
                closing.result(timeout=5)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self.thread is not None:
                self.thread.join(timeout=5)
            # A stopped loop still holds its selector and self-pipe; a workoff run makes
            # one loop per group in one process. A loop still running cannot be closed.
            if self.thread is None or not self.thread.is_alive():
                self.loop.close()
