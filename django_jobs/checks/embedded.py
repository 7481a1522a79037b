"""Checks of ``JOBS["EMBEDDED"]`` (django_jobs.runtime.embedded): ids E190–E199."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, register

from .. import conf
from .base import (
    TAG,
    _closest,
    _declared_queues,
    _error,
    _is_number,
    _jobs_is_a_dict,
    _positive_int,
    _raw,
)


def how_many(value: Any) -> bool:
    """A whole number of at least 1, or ``"cpus"`` (one per CPU)."""
    return value == conf.CPUS or _positive_int(value)


def _queue_names(value: Any) -> list[str] | None:
    """The queue names of ``QUEUES``; None for ``"*"``; [] for a malformed value."""
    if value == "*":
        return None
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list | tuple) and value and all(isinstance(q, str) for q in value):
        return None if "*" in value else list(value)
    return []


@register(TAG)
def check_embedded(app_configs=None, **kwargs) -> list[CheckMessage]:
    if not _jobs_is_a_dict() or _raw().get("EMBEDDED") is None:
        return []
    value = _raw()["EMBEDDED"]
    valid = list(conf.EMBEDDED_DEFAULTS)
    if not isinstance(value, dict):
        return [
            _error(
                190,
                f'JOBS["EMBEDDED"] must be a dict, not {value!r}.',
                'Write it as {"ENABLED": True, "THREADS": 4, "QUEUES": "*"}, or remove it '
                "to leave embedded mode off.",
            )
        ]
    errors = [
        _error(
            191,
            f'JOBS["EMBEDDED"] has an unknown key {key!r}.',
            f"{_closest(key, valid)}Valid keys: {', '.join(valid)}.",
        )
        for key in value
        if key not in conf.EMBEDDED_DEFAULTS
    ]
    if "ENABLED" in value and not isinstance(value["ENABLED"], bool):
        errors.append(
            _error(
                192,
                f'JOBS["EMBEDDED"]["ENABLED"] must be True or False, not {value["ENABLED"]!r}.',
                "True runs jobs in threads of every web process; see docs/howto/embedded.md.",
            )
        )
    if "THREADS" in value and not how_many(value["THREADS"]):
        errors.append(
            _error(
                193,
                f'JOBS["EMBEDDED"]["THREADS"] must be a whole number of at least 1 or "cpus", '
                f"not {value['THREADS']!r}.",
                'It is how many jobs one web process runs at once; "cpus" is one per CPU. '
                f"The default is {conf.EMBEDDED_DEFAULTS['THREADS']}.",
            )
        )
    errors += _queue_errors(value.get("QUEUES", "*"))
    timeout = value.get("SHUTDOWN_TIMEOUT", 0)
    if not (_is_number(timeout) and timeout >= 0):
        errors.append(
            _error(
                195,
                f'JOBS["EMBEDDED"]["SHUTDOWN_TIMEOUT"] must be a number of seconds of 0 or '
                f"more, not {timeout!r}.",
                "It is how long running jobs have to end when a web process exits; keep it "
                "below the server's own graceful-stop time (gunicorn --graceful-timeout). "
                f"The default is {conf.EMBEDDED_DEFAULTS['SHUTDOWN_TIMEOUT']}.",
            )
        )
    return errors


def _queue_errors(value: Any) -> list[CheckMessage]:
    names = _queue_names(value)
    if names == []:
        return [
            _error(
                194,
                f'JOBS["EMBEDDED"]["QUEUES"] must be "*", a queue name or a non-empty list of '
                f"queue names, not {value!r}.",
                'Use "*" (every queue) or names from JOBS["QUEUES"].',
            )
        ]
    declared = _declared_queues()
    if names is None or declared is None:
        return []
    return [
        _error(
            194,
            f'JOBS["EMBEDDED"]["QUEUES"] names {name!r}, which is not in JOBS["QUEUES"].',
            f"{_closest(name, declared)}Add it to QUEUES or use one of: {', '.join(declared)}.",
        )
        for name in names
        if name not in declared
    ]
