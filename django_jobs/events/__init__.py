"""Job events pushed to web pages: publish a small JSON object on a channel, subscribe to
channels from a web process.

::

    from django_jobs import events

    events.publish("exports:7", {"rows": 1200})       # from anywhere
    context.publish({"progress": 40})                  # from a job, on its channel

    async for event in events.subscribe("exports:7"):  # in an async view
        ...

A job's progress (``context.progress()``) is published on its channel (``job:<id>``), and
so is its outcome when it is declared ``@job(events=True)``, in the jobs database that
holds the job (a queue may live in a database of its own). PostgreSQL delivers events
with LISTEN/NOTIFY; SQLite and MySQL/MariaDB through a small events table that
subscribers poll and pruning empties (``JOBS["EVENTS"]``). The ready-made Server-Sent
Events view of one job is in ``django_jobs.events.views``, authorised by
:func:`signed_job_token`.
"""

from __future__ import annotations

import json
from typing import Any

from .. import clock
from ..conf import jobs_settings
from ..exceptions import EventTooLarge
from ..storage import get_storage, job_channel
from .hub import Event, Subscription, subscribe
from .tokens import job_from_token, job_id_from_token, signed_job_token

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "MAX_PAYLOAD_BYTES",
    "Event",
    "EventTooLarge",
    "Subscription",
    "encode",
    "job_channel",
    "job_from_token",
    "job_id_from_token",
    "publish",
    "signed_job_token",
    "subscribe",
]

#: The longest event, as compact JSON in UTF-8: PostgreSQL's NOTIFY takes payloads
#: shorter than 8,000 bytes. Every engine holds to it, so a project that grows from
#: SQLite to PostgreSQL keeps working.
MAX_PAYLOAD_BYTES = 7999
#: The longest channel name (the events table's column).
MAX_CHANNEL_LENGTH = 200


def encode(channel: str, payload: dict[str, Any]) -> str:
    """The JSON text of ``payload``; a clear error for a bad channel or payload."""
    if not isinstance(channel, str) or not channel or len(channel) > MAX_CHANNEL_LENGTH:
        raise ValueError(
            f"an event channel is a non-empty string of at most {MAX_CHANNEL_LENGTH} "
            f"characters, not {channel!r}"
        )
    if not isinstance(payload, dict):
        raise TypeError(f"an event is a JSON object (a dict), not {type(payload).__name__}")
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the event on {channel!r} is not JSON-serialisable: {exc}") from None
    size = len(text.encode())
    if size > MAX_PAYLOAD_BYTES:
        raise EventTooLarge(
            f"the event on {channel!r} is {size:,} bytes of JSON; an event may have at most "
            f"{MAX_PAYLOAD_BYTES:,} (PostgreSQL's NOTIFY limit). Publish a reference "
            "instead (an id, a URL) and keep the data in a table"
        )
    return text


def publish(channel: str, payload: dict[str, Any], *, using: str | None = None) -> None:
    """Publish ``payload`` (a small JSON object) on ``channel``.

    On this thread's connection to the jobs database ``using`` (default:
    ``JOBS["DATABASE"]``; subscribers listen to one database, so publish where they
    subscribe): inside a transaction, subscribers get the event when it commits, and
    never if it rolls back (like an enqueue). Raises
    :class:`EventTooLarge` above :data:`MAX_PAYLOAD_BYTES`, and nothing is sent.
    """
    text = encode(channel, payload)
    # JOBS["DATABASE"], not this process's: a worker of a queue in another database
    # publishes where a web page subscribed by default.
    get_storage(using or jobs_settings().main_database).publish(channel, text, clock.now())
