"""Where jobs run besides the worker's main thread: a thread pool and an event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

from ..executor import Call, run_async, run_sync

Finished = Callable[[Call, BaseException | None], None]
T = TypeVar("T")


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
    """Runs ``async def`` jobs concurrently on one event loop in a background thread."""

    def __init__(self, limit: int, finished: Finished) -> None:
        self.limit = limit
        self.finished = finished
        self.running = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()
        self.futures: dict[int, concurrent.futures.Future[None]] = {}
        self.abandoned: set[int] = set()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(
                target=self.loop.run_forever, name="django-jobs-async", daemon=True
            )
            self.thread.start()
        return self.loop

    def submit(self, call: Call) -> None:
        loop = self._ensure_loop()
        with self.lock:  # held until the future is known: the task takes it to end
            self.running += 1
            self.futures[call.claimed.id] = asyncio.run_coroutine_threadsafe(self._run(call), loop)

    async def _run(self, call: Call) -> None:
        error: BaseException | None = None
        try:
            error = await run_async(call)
        finally:
            with self.lock:
                self.futures.pop(call.claimed.id, None)
                abandoned = call.claimed.id in self.abandoned
                self.abandoned.discard(call.claimed.id)
                if not abandoned:
                    self.running -= 1
        if not abandoned:
            self.finished(call, error)

    def abandon(self, call: Call) -> None:
        """Cancel ``call``'s task (past its timeout) and free its slot at once; whatever
        the task does with the cancellation goes unheard."""
        with self.lock:
            future = _give_up(self, self.futures, call)
        if future is not None:  # else it ended meanwhile and freed its slot
            future.cancel()

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
