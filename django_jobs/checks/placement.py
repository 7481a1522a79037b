"""Checks of where queues live: ``DATABASE`` in ``JOBS["QUEUES"]`` and in worker groups."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, register

from .base import TAG, _closest, _error, _raw, _worker_groups
from .settings import _group_queues

#: Keys of one entry of ``JOBS["QUEUES"]`` when it is a dict.
QUEUE_KEYS = ("DATABASE",)


def _queue_entries() -> list[tuple[str, Any]]:
    queues = _raw().get("QUEUES")
    return list(queues.items()) if isinstance(queues, dict) else []


@register(TAG)
def check_queue_entries(app_configs=None, **kwargs) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name, options in _queue_entries():
        if not isinstance(options, dict) or any(key not in QUEUE_KEYS for key in options):
            messages.append(
                _error(
                    178,
                    f'JOBS["QUEUES"][{name!r}] must be a dict with the key '
                    f"{', '.join(QUEUE_KEYS)}, not {options!r}.",
                    'E.g. {"DATABASE": "reports"}, or {} for a queue in JOBS["DATABASE"].',
                )
            )
    return messages


def _databases_named() -> list[tuple[str, Any]]:
    """(where, value) of every ``DATABASE`` a queue entry or a worker group sets."""
    named = [
        (f'JOBS["QUEUES"][{name!r}]["DATABASE"]', options["DATABASE"])
        for name, options in _queue_entries()
        if isinstance(options, dict) and "DATABASE" in options
    ]
    named += [
        (f'JOBS["WORKERS"][{index}]["DATABASE"]', group["DATABASE"])
        for index, group in _worker_groups()
        if group.get("DATABASE") is not None
    ]
    return named


@register(TAG)
def check_database_aliases(app_configs=None, **kwargs) -> list[CheckMessage]:
    databases = list(getattr(settings, "DATABASES", {}))
    return [
        _error(
            176,
            f"{where} is {value!r}, which is not an alias in settings.DATABASES.",
            f"{_closest(value, databases)}Aliases: {', '.join(databases) or 'none'}.",
        )
        for where, value in _databases_named()
        if not isinstance(value, str) or value not in databases
    ]


@register(TAG)
def check_queue_placement(app_configs=None, **kwargs) -> list[CheckMessage]:
    """E175: a queue mapped to two databases; E177: a group whose queues live apart."""
    raw = _raw()
    main = raw.get("DATABASE") if isinstance(raw.get("DATABASE"), str) else "default"
    homes: dict[str, dict[str, str]] = {}  # queue -> alias -> where it was said
    for name, options in _queue_entries():
        if isinstance(options, dict) and isinstance(options.get("DATABASE"), str):
            homes.setdefault(name, {})[options["DATABASE"]] = f'JOBS["QUEUES"][{name!r}]'
    groups = _worker_groups()
    for index, group in groups:
        alias = group.get("DATABASE")
        if isinstance(alias, str):
            for name in _group_queues(group) or []:
                homes.setdefault(name, {}).setdefault(alias, f'JOBS["WORKERS"][{index}]')
    messages: list[CheckMessage] = [
        _error(
            175,
            f"Queue {name!r} is mapped to more than one database: "
            + "; ".join(f"{alias!r} by {where}" for alias, where in places.items())
            + ".",
            "A queue's jobs live in one database: name it in one place, or give every "
            "group that serves it the same DATABASE.",
        )
        for name, places in homes.items()
        if len(places) > 1
    ]
    for index, group in groups:
        if group.get("DATABASE") is not None:
            continue
        where = {
            name: next(iter(homes[name])) if name in homes else main
            for name in (_group_queues(group) or [])
        }
        if len(set(where.values())) > 1:
            messages.append(
                _error(
                    177,
                    f'JOBS["WORKERS"][{index}] serves queues in different databases: '
                    + ", ".join(f"{name!r} in {alias!r}" for name, alias in where.items())
                    + ". A worker claims from one database.",
                    "Split the group into one group per database.",
                )
            )
    return messages
