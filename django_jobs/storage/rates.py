"""Rate limits in the storage: the part of a limited claim that decides, under each rate
key's lock, whether a picked row may start now or must wait for a later moment, and
writes the grants (see :mod:`django_jobs.rates` for the rule).

Every start is checked against the grants the key already has in the window that ends
now, and its grant then carries the moment of that check: a start never relies on a
moment computed earlier. A reservation (a grant for a later moment, with the waiting
row's id) keeps the waiting rows of a key in order and tells each when to ask again; when
its row is claimed, the check is made again with the grants of the rows actually started
since, and the reservation becomes the start's grant (or moves later, when rows before
it started late).

The key's ``LimitLock`` row (``rate:<key>``) is held until the claim commits, so two
claims never read the same grants. Reads and writes of ``RateGrant`` go through the ORM on
the claim's connection, which turns stored times into datetimes the same way on every
engine.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q

from ..models import RateGrant
from ..rates import LOCK_PREFIX, Rate, parse
from .rows import ClaimedJob, chunks

#: How often (per key and process) a claim deletes the key's grants that no longer count.
PRUNE_EVERY = timedelta(seconds=60)
#: A row whose rate lets it start this soon after the claim is claimed now, to start at
#: that moment (``ClaimedJob.not_before``), rather than made to wait and claimed again:
#: a second wake-up and claim would start it later still. Well under the flusher's
#: HOLD_LIMIT, after which a claimed job that has not started is given back.
LEAD = timedelta(seconds=0.1)


class RateWindow:
    """The grants of one key a claim needs: those of the window that ends now (starts,
    and reservations whose moment has come) and the latest ones overall (reservations
    for later moments included), each sorted, oldest first."""

    def __init__(self, rate: Rate, recent: Iterable[datetime], latest: Iterable[datetime]):
        self.rate = rate
        self.period = timedelta(seconds=rate.period + rate.margin)
        #: How much earlier than its claim a start may be stamped: half the margin.
        self.backdate = timedelta(seconds=rate.margin / 2)
        self.recent = sorted(recent)
        self.latest = sorted(latest)

    def floor(self, grants: list[datetime]) -> datetime | None:
        """The earliest grant that keeps every window of the period holding it at N
        grants or fewer, among ``grants``: the N-th latest plus the period (None: fewer
        than N grants)."""
        if len(grants) < self.rate.count:
            return None
        return grants[-self.rate.count] + self.period

    def next_start(self, now: datetime) -> datetime:
        """The moment a row picked now may start: not before the latest grant (a row
        picked later never goes before one picked earlier) and, once there are N grants,
        not before the N-th latest plus the period."""
        floor = self.floor(self.latest)
        moment = max(now, floor) if floor is not None else now
        return max(moment, self.latest[-1]) if self.latest else moment

    def stamp(self, start: datetime, floor: datetime | None) -> datetime:
        """The moment a start at ``start`` is recorded at: up to half the margin earlier,
        so that a claim made that much late does not push the next window back (the
        grants' windows of the period and the margin then hold the starts' windows of
        the period and half the margin), never before ``floor``."""
        moment = start - self.backdate
        return moment if floor is None else max(moment, floor)

    def add(self, moment: datetime, now: datetime, start: bool = False) -> None:
        """A grant: a start (``start``), or a reservation, which counts once its moment
        has come."""
        bisect.insort(self.latest, moment)
        if start or moment <= now:
            bisect.insort(self.recent, moment)

    def remove(self, moment: datetime) -> None:
        for grants in (self.recent, self.latest):
            i = bisect.bisect_left(grants, moment)
            if i < len(grants) and grants[i] == moment:
                del grants[i]


class RateDecisions:
    """What a claim round decided for its rows with a rate key."""

    def __init__(self) -> None:
        #: Rows that must wait: job id → their new ``run_at`` (their reservation's moment).
        self.deferred: dict[int, datetime] = {}
        #: New grants: (key, moment, id of the row reserved for, or None for a start).
        self.new: list[tuple[str, datetime, int | None]] = []
        #: Reservations that move: job id → (new moment, still reserved).
        self.moved: dict[int, tuple[datetime, bool]] = {}


def _start_at(job: ClaimedJob, start: datetime) -> None:
    """Tell the worker when a job granted a start a moment after its claim may start."""
    if start.tzinfo is None:  # USE_TZ = False: naive UTC
        start = start.replace(tzinfo=UTC)
    job.not_before = start.timestamp()


class RateLimits:
    """The part of :class:`~django_jobs.storage.base.Storage` that enforces
    ``@job(rate_limit=)`` and a group's ``RATE_LIMIT`` within a limited claim."""

    # Set by Storage.
    alias: str
    table: str

    #: True once a claim of this process met a row with a rate limit: the worker then
    #: claims no more rows than it can start at once (see ``Worker._claim_size``).
    rated = False
    #: False while ``django_jobs.testing.run_jobs`` claims: rows with a rate limit are
    #: claimed as if they had none (no grant is written, nothing waits).
    paced = True

    @staticmethod
    def rate_lock_keys(jobs: Iterable[ClaimedJob]) -> set[str]:
        """The ``LimitLock`` keys of the rate keys among ``jobs``."""
        return {LOCK_PREFIX + job.rate_key for job in jobs if job.rate_key is not None}

    def rate_windows(
        self, jobs: list[ClaimedJob], now: datetime
    ) -> tuple[dict[str, RateWindow], dict[int, datetime]]:
        """Each rate key's window, and the reservations held by ``jobs`` (id → moment);
        called with the keys' locks held."""
        self.rated = True
        rated = [job for job in jobs if job.rate_key is not None]
        rates = {job.rate_key: parse(job.rate_limit or "1/s") for job in rated}
        grants = RateGrant.objects.using(self.alias)
        windows = {}
        for key, rate in rates.items():
            # A start is stamped up to half the margin early: read that much further back.
            since = now - timedelta(seconds=rate.period + 1.5 * rate.margin)
            of_key = grants.filter(key=key, at__gt=since).order_by("-at")
            # N, and one more per row of the key being decided: each may hold one of them.
            n = rate.count + sum(1 for job in rated if job.rate_key == key)
            # Starts and reservations whose moment has come; starts a moment ahead too.
            recent = of_key.filter(Q(at__lte=now) | Q(job_id=None)).values_list("at", flat=True)[:n]
            latest = of_key.values_list("at", flat=True)[:n]
            windows[key] = RateWindow(rate, recent, latest)
        keys = {job.id: job.rate_key for job in rated}
        reserved = {
            job_id: at
            for job_id, key, at in grants.filter(job_id__in=list(keys)).values_list(
                "job_id", "key", "at"
            )
            if keys[job_id] == key
        }
        return windows, reserved

    def rate_decide(
        self,
        job: ClaimedJob,
        windows: dict[str, RateWindow],
        reserved: dict[int, datetime],
        decisions: RateDecisions,
        now: datetime,
        has_slot: bool,
        room: bool,
    ) -> bool:
        """Whether ``job`` (with a rate key) starts now. ``has_slot``: its concurrency
        limit (if any) lets it; ``room``: the claim takes more rows. A row that must wait
        for its rate is added to ``decisions.deferred``; one that may start but finds no
        slot or room gets no grant (and keeps its reservation)."""
        window = windows[job.rate_key]
        moment = reserved.get(job.id)
        if moment is not None:
            if moment > now:  # picked before its moment (an admin's "run now")
                decisions.deferred[job.id] = moment
                return False
            window.remove(moment)  # its own grant does not count against it
            floor = window.floor(window.recent)
            start = max(now, floor) if floor is not None else now
            if start - now > LEAD or not (has_slot and room):
                if start > now:  # rows before it started late: ask again then
                    decisions.moved[job.id] = (start, True)
                    decisions.deferred[job.id] = start
                window.add(max(start, moment), now)
                return False
            stamp = window.stamp(start, floor)
            window.add(stamp, now, start=True)
            decisions.moved[job.id] = (stamp, False)
            _start_at(job, start)
            return True
        start = window.next_start(now)
        if start - now > LEAD:
            window.add(start, now)
            decisions.new.append((job.rate_key, start, job.id))
            decisions.deferred[job.id] = start
            return False
        if not (has_slot and room):
            return False  # no start, so no grant
        stamp = window.stamp(start, window.floor(window.latest))
        window.add(stamp, now, start=True)
        decisions.new.append((job.rate_key, stamp, None))
        _start_at(job, start)
        return True

    def rate_write(self, cursor: Any, decisions: RateDecisions, now: datetime) -> None:
        """Write what a round decided: grants, moved reservations, waiting rows' ``run_at``."""
        grants = RateGrant.objects.using(self.alias)
        for job_id, (moment, still_reserved) in decisions.moved.items():
            grants.filter(job_id=job_id).update(
                at=moment, job_id=job_id if still_reserved else None
            )
        if decisions.new:
            grants.bulk_create(
                [RateGrant(key=key, at=at, job_id=job_id) for key, at, job_id in decisions.new],
                batch_size=500,
            )
        for chunk in chunks(list(decisions.deferred.items()), 200):
            cases = " ".join(["WHEN %s THEN %s"] * len(chunk))
            params: list[Any] = [v for job_id, at in chunk for v in (job_id, self.adapt(at))]
            cursor.execute(
                f"UPDATE {self.table} SET run_at = CASE id {cases} END, updated_at = %s"
                f" WHERE id IN ({', '.join(['%s'] * len(chunk))})",
                [*params, self.adapt(now), *(job_id for job_id, _ in chunk)],
            )

    def prune_grants(self, windows: dict[str, RateWindow], now: datetime) -> None:
        """Delete the grants that no longer count (older than their key's period, and a
        minute more), at most once a minute per key and process. A reservation deleted
        so (its job was not picked for a whole period) only means that the job asks for
        a new grant when it is picked."""
        pruned = self.__dict__.setdefault("_pruned", {})
        grants = RateGrant.objects.using(self.alias)
        for key, window in windows.items():
            if now - pruned.get(key, now - PRUNE_EVERY) < PRUNE_EVERY:
                continue
            grants.filter(key=key, at__lt=now - window.period - PRUNE_EVERY).delete()
            pruned[key] = now
