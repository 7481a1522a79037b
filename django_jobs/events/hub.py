"""Subscriptions: one thread and one connection per process read events for all of them.

A web process may hold hundreds of open event streams. Each would otherwise need a
connection of its own (to LISTEN, or to poll); instead one thread per process owns one
reader (``Storage.event_reader``), listens to the union of the subscribed channels and
hands each event to the subscriptions of its channel, whether they wait in an event
loop (``async for``) or in a thread (``for``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db import connections

from ..conf import jobs_settings
from ..storage import get_storage
from ..storage.eventreading import EventReader, RawEvent
from ..storage.waiting import drain

logger = logging.getLogger("django_jobs.events")


@dataclass(frozen=True, slots=True)
class Event:
    """One event a subscription received."""

    channel: str
    data: dict[str, Any]
    #: The events table's row id on SQLite and MySQL/MariaDB; None on PostgreSQL.
    id: int | None = None


class Subscription:
    """The events published on ``channels`` after it started.

    Use it as an async or sync iterator (it starts on the first event asked for), or as
    a context manager to know it is listening before doing something that publishes::

        async with subscribe("job:7") as events:
            ...                       # anything published from here on is received
            event = await events.get(timeout=5)   # None after 5 s without one

    Closing it (leaving the ``with`` block, ``close()``) stops the listening.
    """

    #: How long starting waits for the reader thread to listen before giving up.
    START_TIMEOUT = 10.0

    def __init__(self, channels: tuple[str, ...], using: str | None = None) -> None:
        if not channels or not all(isinstance(c, str) and c for c in channels):
            raise ValueError(f"subscribe() takes one or more channel names, not {channels!r}")
        self.channels = channels
        self.alias = using or jobs_settings().main_database
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None
        self._hub: Hub | None = None
        self._listening = threading.Event()
        #: Events with an id up to this were published before the subscription started.
        self.positions: dict[str, int | None] = {}
        self.closed = False

    # -- fed by the hub's thread ---------------------------------------------------

    def deliver(self, event: Event) -> None:
        self._queue.put(event)
        loop, arrived = self._loop, self._arrived
        if loop is not None and arrived is not None:
            try:
                loop.call_soon_threadsafe(arrived.set)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def listening(self, positions: dict[str, int | None]) -> None:
        self.positions = positions
        self._listening.set()

    # -- starting and stopping -----------------------------------------------------

    def start(self) -> Subscription:
        """Start listening (in a thread): returns once events published from now on will
        be received."""
        if self._hub is None:
            self._hub = hub_for(self.alias)
            self._hub.add(self)
            if not self._listening.wait(self.START_TIMEOUT):
                self.close()
                raise TimeoutError(
                    f"could not listen to {', '.join(self.channels)} within "
                    f"{self.START_TIMEOUT:.0f} s: is the jobs database reachable?"
                )
        return self

    async def astart(self) -> Subscription:
        """``start`` for async code: does not block the event loop."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._arrived = asyncio.Event()
        if self._hub is None:
            await self._loop.run_in_executor(None, self.start)
        return self

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._hub is not None:
                self._hub.remove(self)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    # -- reading ---------------------------------------------------------------------

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return None

    def get_sync(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (None: no limit)."""
        self.start()
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting at most ``timeout`` seconds (None: no limit)."""
        await self.astart()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            self._arrived.clear()
            event = self.get_nowait()  # delivered between the read and the clear
            if event is not None:
                return event
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self.get()
        assert event is not None
        return event

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Event:
        event = self.get_sync()
        assert event is not None
        return event

    async def __aenter__(self) -> Subscription:
        return await self.astart()

    async def __aexit__(self, *exc_info: Any) -> None:
        self.close()

    def __enter__(self) -> Subscription:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def subscribe(*channels: str, using: str | None = None) -> Subscription:
    """The events published on ``channels`` from now on (see :class:`Subscription`).

    ``using``: the jobs database to listen to (default ``JOBS["DATABASE"]``). A job's
    own channel is heard in the database that holds the job: for a job whose queue
    lives elsewhere, ``subscribe(job_channel(job.pk), using=job._state.db)``.
    """
    return Subscription(tuple(channels), using)


class Hub:
    """The reader thread of one process and one jobs database."""

    #: Seconds between tries to reach the database again after losing it.
    RECONNECT_DELAY = 1.0

    def __init__(self, alias: str) -> None:
        self.alias = alias
        # Reentrant: a Subscription collected by the garbage collector while this thread
        # holds the lock removes itself (__del__), in this thread.
        self.lock = threading.RLock()
        self.subscriptions: dict[str, set[Subscription]] = {}
        self.added: list[Subscription] = []
        self.removed: list[Subscription] = []
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        #: Set while the hub has no subscription and no connection.
        self.idle = threading.Event()
        self.idle.set()
        self.thread = threading.Thread(target=self._run, name="django-jobs-events", daemon=True)
        self.thread.start()

    def add(self, subscription: Subscription) -> None:
        with self.lock:
            self.idle.clear()
            self.added.append(subscription)
        self._wake()

    def remove(self, subscription: Subscription) -> None:
        with self.lock:
            self.removed.append(subscription)
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self.wake_write, b"x")
        except BlockingIOError:  # the pipe is full: the thread has wake-ups to read
            pass

    def _run(self) -> None:
        reader: EventReader | None = None
        while True:
            try:
                if reader is None:
                    reader = self._open()
                self._apply(reader)
                if not self.subscriptions:
                    reader.close()  # idle: give the connection back
                    reader = None
                    # And this thread's Django connections (PostgreSQL's pooler probe
                    # opens one): an idle hub holds none.
                    connections.close_all()
                    with self.lock:
                        if not self.added:
                            self.idle.set()
                    self._sleep(None)
                    continue
                events = reader.read(self.RECONNECT_DELAY * 5, self.wake_read)
                drain(self.wake_read)
                self._dispatch(events)
            except Exception as exc:
                logger.warning("[jobs] events: lost the jobs database (%s); reconnecting", exc)
                if reader is not None:
                    reader.close()
                reader = None
                self._sleep(self.RECONNECT_DELAY)

    def _open(self) -> EventReader:
        storage = get_storage(self.alias)
        reader = storage.event_reader(jobs_settings().events.poll_interval)
        reader.open()
        for channel in list(self.subscriptions):
            reader.listen(channel)
        return reader

    def _sleep(self, timeout: float | None) -> None:
        import select

        select.select([self.wake_read], [], [], timeout)
        drain(self.wake_read)

    def _apply(self, reader: EventReader) -> None:
        with self.lock:
            added, self.added = self.added, []
            removed, self.removed = self.removed, []
        for subscription in removed:
            if subscription in added:
                added.remove(subscription)
                continue
            for channel in subscription.channels:
                subscribers = self.subscriptions.get(channel)
                if subscribers is None:
                    continue
                subscribers.discard(subscription)
                if not subscribers:
                    del self.subscriptions[channel]
                    reader.unlisten(channel)
        for subscription in added:
            positions: dict[str, int | None] = {}
            for channel in subscription.channels:
                subscribers = self.subscriptions.setdefault(channel, set())
                # Listening again on a channel asks for a fresh position: what this
                # subscription must not see.
                positions[channel] = reader.listen(channel)
                subscribers.add(subscription)
            subscription.listening(positions)

    def _dispatch(self, events: list[RawEvent]) -> None:
        for raw in events:
            subscribers = self.subscriptions.get(raw.channel)
            if not subscribers:
                continue
            try:
                data = json.loads(raw.payload)
            except ValueError:
                logger.warning(
                    "[jobs] events: skipped an event on %s that is not JSON", raw.channel
                )
                continue
            event = Event(raw.channel, data, raw.id)
            for subscription in subscribers:
                start = subscription.positions.get(raw.channel)
                if raw.id is None or start is None or raw.id > start:
                    subscription.deliver(event)


_hubs: dict[tuple[int, str], Hub] = {}
_hubs_lock = threading.Lock()


def wait_until_idle(timeout: float = 10.0) -> bool:
    """Wait until every hub of this process has closed its connection (for tests: a
    test database cannot be dropped while a hub holds a connection to it)."""
    deadline = time.monotonic() + timeout
    return all(hub.idle.wait(max(0.0, deadline - time.monotonic())) for hub in list(_hubs.values()))


def hub_for(alias: str) -> Hub:
    """This process's hub for ``alias`` (a forked child starts its own)."""
    key = (os.getpid(), alias)
    with _hubs_lock:
        hub = _hubs.get(key)
        if hub is None:
            hub = _hubs[key] = Hub(alias)
        return hub
