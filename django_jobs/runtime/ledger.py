"""What one worker process holds, and the only place that changes it.

A claimed job moves through four states inside a worker, each owned by this ledger and
changed only under its lock, whichever thread (main loop, pool threads, event loop,
flusher, watchdog, signal handler) asks:

``pending`` (claimed, not started) → ``running`` (started) → ``finished`` (outcome not
written yet) → written (gone from the ledger).

Besides, a ``running`` job whose start is not written yet is *unmarked*: recovery
cannot tell it from a job that never started. Starts and outcomes are written together
by :meth:`take_writes`; a pending job can be taken back out to be given back unspent
(:meth:`take_stale`, :meth:`take_pending`), and a running one when the worker stops at
once or times out (:meth:`take_running`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from .. import clock
from ..executor import Call
from ..storage import ClaimedJob, Outcome, StartMark


@dataclass
class Writes:
    """Starts and outcomes taken from the ledger to be written in one flush."""

    marks: list[StartMark]
    outcomes: list[Outcome]

    def __bool__(self) -> bool:
        return bool(self.marks or self.outcomes)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._pending: deque[Call] = deque()
        self._running: dict[int, Call] = {}
        self._unmarked: set[int] = set()
        self._finished: list[Outcome] = []
        #: monotonic time since which something waits to be written (None: nothing).
        self._unwritten_since: float | None = None
        #: monotonic time since which an outcome waits to be written (None: none does).
        self._outcomes_since: float | None = None
        self.done = 0

    # -- reading -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def running(self) -> int:
        return len(self._running)

    def busy(self) -> bool:
        return bool(self._pending or self._running)

    def next_not_before(self) -> float | None:
        """When the next pending job may start, if its rate limit set a moment."""
        with self.lock:
            return self._pending[0].claimed.not_before if self._pending else None

    def unwritten_for(self) -> float:
        """Seconds the oldest unwritten start or outcome has waited (0: none)."""
        since = self._unwritten_since
        return 0.0 if since is None else time.monotonic() - since

    def outcomes_wait(self) -> float:
        """Seconds the oldest unwritten outcome has waited (0: none)."""
        since = self._outcomes_since
        return 0.0 if since is None else time.monotonic() - since

    def known_ids(self) -> set[int]:
        with self.lock:
            ids = set(self._running) | {call.claimed.id for call in self._pending}
            return ids | {outcome.job.id for outcome in self._finished}

    def held_ids(self) -> list[int]:
        """Jobs claimed and not ended yet (pending and running): what a cancellation stops."""
        with self.lock:
            return [*self._running, *(call.claimed.id for call in self._pending)]

    def cancel_overdue(self, grace: float) -> Call | None:
        """A running job told to stop (cancelled) more than ``grace`` seconds ago."""
        now = time.monotonic()
        with self.lock:
            for call in self._running.values():
                if call.cancel_seen is not None and now - call.cancel_seen > grace:
                    return call
        return None

    def overdue(self, default_limit: float) -> tuple[Call, float] | None:
        """A running job past its timeout (else ``default_limit``), with that limit."""
        now = time.monotonic()
        with self.lock:
            for call in self._running.values():
                limit = call.timeout or default_limit
                if now - call.started > limit:
                    return call, limit
        return None

    # -- claimed → pending → running -----------------------------------------------------

    def add(self, calls: Iterable[Call]) -> None:
        now = time.monotonic()
        with self.lock:
            for call in calls:
                call.claimed_at = now
                self._pending.append(call)

    def start_next(self, can_start: Callable[[Call], bool]) -> Call | None:
        """Move the next pending job to running if ``can_start`` says it has a slot."""
        with self.lock:
            if not self._pending or not can_start(self._pending[0]):
                return None
            call = self._pending.popleft()
            call.started = started = time.monotonic()
            call.started_at = time.time()
            job_id = call.claimed.id
            self._running[job_id] = call
            self._unmarked.add(job_id)
            if self._unwritten_since is None:
                self._unwritten_since = started
            return call

    def finish(self, call: Call, outcome: Outcome) -> bool:
        """Buffer a job's outcome; False when the job was taken away meanwhile."""
        with self.lock:
            if self._running.pop(call.claimed.id, None) is None:
                return False  # given back (immediate stop) or recorded by the watchdog
            self._unmarked.discard(call.claimed.id)
            self._finished.append(outcome)
            self._note_unwritten()
            self.done += 1
            return True

    def finish_many(self, ended: list[tuple[Call, Outcome]]) -> list[Outcome]:
        """``finish`` for several jobs under one lock; the outcomes buffered."""
        buffered = []
        with self.lock:
            for call, outcome in ended:
                if self._running.pop(call.claimed.id, None) is None:
                    continue
                self._unmarked.discard(call.claimed.id)
                buffered.append(outcome)
            if buffered:
                self._finished += buffered
                self._note_unwritten()
                self.done += len(buffered)
        return buffered

    def _note_unwritten(self) -> None:
        # Called with an outcome just buffered.
        if self._unwritten_since is None:
            self._unwritten_since = time.monotonic()
        if self._outcomes_since is None:
            self._outcomes_since = time.monotonic()

    # -- writing -------------------------------------------------------------------------

    def take_writes(
        self, deadline_of: Callable[[Call], float], started_before: float | None = None
    ) -> Writes:
        """Starts not yet written and outcomes not yet written, removed from the ledger.

        With ``started_before`` (monotonic), only the starts of jobs that began by then:
        a younger job most likely ends before the next flush, which then writes its
        outcome alone (its start with it), one statement fewer. The starts left behind
        keep the ledger unwritten since the oldest of them, so the flusher comes back for
        them as it would have.
        """
        with self.lock:
            marks = []
            left: set[int] = set()
            oldest_left: float | None = None
            for job_id in self._unmarked:
                call = self._running[job_id]
                if started_before is not None and call.started > started_before:
                    left.add(job_id)
                    if oldest_left is None or call.started < oldest_left:
                        oldest_left = call.started
                    continue
                limit = deadline_of(call)
                started = clock.at(call.started_at)
                expires = started + timedelta(seconds=limit) if limit else None
                marks.append(StartMark(call.claimed, started, expires))
            writes = Writes(marks, self._finished)
            self._unmarked = left
            self._finished = []
            self._unwritten_since = oldest_left
            self._outcomes_since = None
            return writes

    def restore(self, writes: Writes) -> None:
        """Put back writes that failed, to be tried again."""
        with self.lock:
            self._finished = writes.outcomes + self._finished
            for mark in writes.marks:
                if mark.job.id in self._running:
                    self._unmarked.add(mark.job.id)
            # (the start of a job that finished meanwhile is written with its outcome)
            if writes and self._unwritten_since is None:
                self._unwritten_since = time.monotonic()
            if self._finished and self._outcomes_since is None:
                self._outcomes_since = time.monotonic()

    # -- giving back -----------------------------------------------------------------------

    def take_stale(self, older_than: float) -> list[Call]:
        """Pending jobs claimed more than ``older_than`` seconds ago: hoarded ones."""
        limit = time.monotonic() - older_than
        with self.lock:
            if not self._pending or self._pending[0].claimed_at > limit:
                return []
            stale = [call for call in self._pending if call.claimed_at <= limit]
            self._pending = deque(call for call in self._pending if call.claimed_at > limit)
            return stale

    def put_back(self, calls: list[Call]) -> None:
        """Pending jobs that could not be given back go to the front again."""
        with self.lock:
            self._pending.extendleft(reversed(calls))

    def take_pending_ids(self, ids: set[int]) -> list[Call]:
        """Pending jobs among ``ids``, taken out (they are cancelled: never start them)."""
        with self.lock:
            taken = [call for call in self._pending if call.claimed.id in ids]
            if taken:
                self._pending = deque(c for c in self._pending if c.claimed.id not in ids)
            return taken

    def mark_cancelled(self, ids: set[int]) -> list[Call]:
        """Running jobs among ``ids`` not told yet: told now (their context says stop)."""
        now = time.monotonic()
        told = []
        with self.lock:
            for job_id in ids:
                call = self._running.get(job_id)
                if call is None or call.cancel_seen is not None:
                    continue
                call.cancel_seen = now
                if call.context is not None:
                    call.context.cancelled.set()
                told.append(call)
        return told

    def take_pending(self) -> list[ClaimedJob]:
        with self.lock:
            jobs = [call.claimed for call in self._pending]
            self._pending.clear()
            return jobs

    def take_running(self, keep: int | None = None) -> list[ClaimedJob]:
        """Running jobs (except ``keep``), taken away: their outcomes will be dropped."""
        with self.lock:
            taken = [call.claimed for i, call in self._running.items() if i != keep]
            self._running = {i: c for i, c in self._running.items() if i == keep}
            self._unmarked &= set(self._running)
            return taken

    def take_call(self, call: Call) -> bool:
        """Take one running job away (its timeout is being recorded instead)."""
        with self.lock:
            self._unmarked.discard(call.claimed.id)
            return self._running.pop(call.claimed.id, None) is not None
