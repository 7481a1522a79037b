"""Pausing queues: ``pause(queue)`` / ``resume(queue)``, ``jobs pause|resume`` and the admin.

A pause is a row of ``QueuePause``: every worker on every host reads the paused queues
and leaves them out of its claims, within its poll interval (``SLEEP_DELAY``, at most one
heartbeat interval) and at once on PostgreSQL, where pausing and resuming send a NOTIFY.
A paused queue keeps accepting enqueues, and jobs that were running when it was paused
finish; resuming lets idle workers claim its backlog at once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction

from . import clock
from .conf import jobs_settings
from .exceptions import UnknownQueue
from .models import QueuePause
from .storage import get_storage

logger = logging.getLogger("django_jobs.pausing")

_BY_MAX = QueuePause._meta.get_field("paused_by").max_length
_REASON_MAX = QueuePause._meta.get_field("reason").max_length


def pause(queue: str, *, by: str = "", reason: str = "", using: str | None = None) -> QueuePause:
    """Pause ``queue`` (one of ``JOBS["QUEUES"]``); returns its pause, the existing one if
    it was paused already (whose ``by`` and ``reason`` are kept)."""
    _check_queue(queue)
    by, reason = _text(by, "by", _BY_MAX), _text(reason, "reason", _REASON_MAX)
    storage = get_storage(using or jobs_settings().database_for(queue))
    with transaction.atomic(using=storage.alias):
        row, created = QueuePause.objects.using(storage.alias).get_or_create(
            queue=queue, defaults={"paused_at": clock.now(), "paused_by": by, "reason": reason}
        )
        if created:
            storage.notify_controls()  # PostgreSQL: delivered at commit
    if created:
        logger.info("[jobs] queue %s paused%s", queue, f" by {by}" if by else "")
    return row


def resume(queue: str, *, using: str | None = None) -> bool:
    """Resume ``queue``; False when it was not paused. A queue no longer in
    ``JOBS["QUEUES"]`` can still be resumed while it is paused."""
    if not isinstance(queue, str):
        raise TypeError(f"a queue name is a string, not {queue!r}")
    storage = get_storage(using or jobs_settings().database_for(queue))
    with transaction.atomic(using=storage.alias):
        deleted, _ = QueuePause.objects.using(storage.alias).filter(queue=queue).delete()
        if not deleted:
            _check_queue(queue)
            return False
        storage.notify_controls()
        storage.wake_workers([queue])  # idle workers claim the backlog now
    logger.info("[jobs] queue %s resumed", queue)
    return True


def paused_queues(using: str | None = None) -> dict[str, QueuePause]:
    """Every paused queue, by name, with who paused it, when and why (of every jobs
    database, or of ``using``)."""
    aliases = [using] if using else jobs_settings().databases
    rows = [row for alias in aliases for row in QueuePause.objects.using(alias)]
    return {row.queue: row for row in sorted(rows, key=lambda row: row.queue)}


def is_paused(queue: str, using: str | None = None) -> bool:
    alias = using or jobs_settings().database_for(queue)
    return QueuePause.objects.using(alias).filter(queue=queue).exists()


def _check_queue(queue: object) -> None:
    if not isinstance(queue, str):
        raise TypeError(f"a queue name is a string, not {queue!r}")
    known = jobs_settings().queues
    if queue not in known:
        raise UnknownQueue(queue, known)


def _text(value: object, name: str, limit: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, not {value!r}")
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    return value


def claim_filter(
    queues: tuple[str, ...] | None, paused: frozenset[str]
) -> tuple[tuple[str, ...] | None, tuple[str, ...]] | None:
    """(queues, exclude) for a claim by a worker serving ``queues`` while ``paused`` are
    paused; None when it serves only paused queues (nothing to claim).

    A worker with a list of queues claims that list less the paused ones; one serving every
    queue (None) leaves the paused ones out with ``NOT IN``.
    """
    if not paused:
        return queues, ()
    if queues is None:
        return None, tuple(sorted(paused))
    left = tuple(q for q in queues if q not in paused)
    return (left, ()) if left else None


def paused_among(queues: tuple[str, ...] | None, paused: frozenset[str]) -> Sequence[str]:
    """The paused queues a worker serving ``queues`` must leave out of its probes."""
    if queues is None:
        return tuple(sorted(paused))
    return tuple(q for q in queues if q in paused)
