"""Where jobs run besides the worker's main thread: a thread pool and an event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .executor import Call, run_async, run_sync

Finished = Callable[[Call, BaseException | None], None]


class ThreadRunner:
    """Runs sync jobs on up to ``size`` threads, each with its own database connection."""

    def __init__(self, size: int, finished: Finished) -> None:
        self.pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="django-jobs")
        self.finished = finished
        self.running = 0
        self.lock = threading.Lock()

    def submit(self, call: Call) -> None:
        with self.lock:
            self.running += 1
        self.pool.submit(self._run, call)

    def _run(self, call: Call) -> None:
        error = run_sync(call)
        with self.lock:
            self.running -= 1
        self.finished(call, error)

    def shutdown(self, wait: bool = True) -> None:
        # A pool thread's connections close when the thread ends and they are collected.
        self.pool.shutdown(wait=wait, cancel_futures=True)


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
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self.thread is not None:
                self.thread.join(timeout=5)
