"""Reading published events: how a subscribing process learns of them.

Each engine's storage returns an :class:`EventReader` (PostgreSQL: LISTEN on a connection
of its own, in ``postgresql.py``; SQLite and MySQL/MariaDB: :class:`TableEventReader`,
which polls the events table). One reader serves every subscription of a process, from
the thread of ``django_jobs.events.hub``.
"""

from __future__ import annotations

import select
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connections

from ..models import Event

if TYPE_CHECKING:
    from .base import Storage


@dataclass(frozen=True, slots=True)
class RawEvent:
    channel: str
    #: The event's JSON text.
    payload: str
    #: The events table's row id (None on PostgreSQL, whose NOTIFY has no id).
    id: int | None = None


class EventReader:
    """Waits for events on the channels it was told to listen to."""

    def open(self) -> None:
        """Connect; raises when the database cannot be reached."""

    def listen(self, channel: str) -> int | None:
        """Start reading ``channel``; events after the returned position are delivered
        (None: from now on, the reader keeps no position)."""
        raise NotImplementedError

    def unlisten(self, channel: str) -> None:
        raise NotImplementedError

    def read(self, timeout: float, wake_fd: int) -> list[RawEvent]:
        """Events published since the last read; returns early when ``wake_fd`` is
        readable (it is not drained here)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class TableEventReader(EventReader):
    """Polls the events table every ``interval`` seconds, on this thread's connection.

    Ids are given out at insert and become visible at commit, which on MySQL/MariaDB
    need not be in id order: an id can appear after a higher one was read. So each
    poll reads again from the highest id seen ``commit_lag`` seconds ago and skips what
    it delivered; on SQLite (one writer at a time) ids commit in order and the lag is 0.
    """

    #: Rows one poll reads at most (the rest come at the next poll, at once).
    BATCH = 1000

    def __init__(self, storage: Storage, interval: float, commit_lag: float) -> None:
        self.storage = storage
        self.interval = interval
        self.commit_lag = commit_lag
        self.channels: set[str] = set()
        self.cursor = 0
        #: (monotonic time, cursor then): where a poll starts when ids may commit late.
        self.history: deque[tuple[float, int]] = deque()
        self.delivered: set[int] = set()
        self.backlog = False

    def _events(self):
        return Event.objects.using(self.storage.alias)

    def listen(self, channel: str) -> int | None:
        self.channels.add(channel)
        position = self._events().order_by("-id").values_list("id", flat=True).first() or 0
        self.cursor = max(self.cursor, position)
        return position

    def unlisten(self, channel: str) -> None:
        self.channels.discard(channel)

    def _start(self, now: float) -> int:
        if not self.commit_lag:
            return self.cursor
        self.history.append((now, self.cursor))
        while len(self.history) > 1 and self.history[1][0] <= now - self.commit_lag:
            self.history.popleft()
        return self.history[0][1]

    def read(self, timeout: float, wake_fd: int) -> list[RawEvent]:
        if not self.backlog:
            select.select([wake_fd], [], [], max(0.0, min(timeout, self.interval)))
        if not self.channels:
            return []
        start = self._start(time.monotonic())
        rows = list(
            self._events()
            .filter(channel__in=sorted(self.channels), id__gt=start)
            .order_by("id")
            .values_list("id", "channel", "payload")[: self.BATCH]
        )
        self.backlog = len(rows) == self.BATCH
        events = [RawEvent(channel, payload, pk) for pk, channel, payload in rows]
        if self.commit_lag:
            events = [event for event in events if event.id not in self.delivered]
            self.delivered = {pk for pk in self.delivered if pk > start}
            self.delivered.update(event.id for event in events)
        if rows:
            self.cursor = max(self.cursor, rows[-1][0])
        return events

    def close(self) -> None:
        connections[self.storage.alias].close()
