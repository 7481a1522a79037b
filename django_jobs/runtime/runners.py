"""Where jobs run besides the worker's main thread: a thread pool and an event loop."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.db import connections

from ..executor import Call, run_async, run_sync

Finished = Callable[[Call, BaseException | None], None]


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
        self.threads = [
            threading.Thread(target=self._serve, name=f"django-jobs-{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, call: Call) -> None:
        with self.lock:
            self.running += 1
        self.calls.put(call)

    def _serve(self) -> None:
        try:
            while (call := self.calls.get()) is not None:
                try:
                    error = run_sync(call)
                except BaseException as exc:
                    # Signals reach the main thread only: a KeyboardInterrupt (or
                    # Interrupted) here was raised by the job itself. It is the job's
                    # error; the thread and its slot live on.
                    error = exc
                with self.lock:
                    self.running -= 1
                self.finished(call, error)
        finally:
            connections.close_all()

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

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self.loop is None:
            self.loop = asyncio.new_event_loop()
            self.thread = threading.Thread(
                target=self.loop.run_forever, name="django-jobs-async", daemon=True
            )
            self.thread.start()
        return self.loop

    def submit(self, call: Call) -> None:
        with self.lock:
            self.running += 1
        asyncio.run_coroutine_threadsafe(self._run(call), self._ensure_loop())

    async def _run(self, call: Call) -> None:
        error = await run_async(call)
        with self.lock:
            self.running -= 1
        self.finished(call, error)

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
