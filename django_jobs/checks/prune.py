"""Checks of ``JOBS["PRUNE"]``: the built-in prune schedule and the ages it deletes at."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.checks import CheckMessage, register

from .. import conf
from .base import TAG, _closest, _declared_queues, _error, _is_number, _positive_int, _raw

#: Beyond this a batch is no longer short: its DELETE holds its row locks (and on SQLite
#: the database's write lock) for as long as it takes.
MAX_BATCH_SIZE = 10_000

AGES = ("SUCCEEDED_AFTER", "FAILED_AFTER", "HISTORY_AFTER")


def _prune() -> dict[str, Any] | None:
    """``JOBS["PRUNE"]`` when it is a dict (E090 reports the other wrong types)."""
    value = _raw().get("PRUNE")
    return value if isinstance(value, dict) else None


def _valid_age(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, timedelta):
        return value >= timedelta(0)
    return _is_number(value) and value >= 0  # NaN is not >= 0 either


@register(TAG)
def check_prune_is_a_dict(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    if "PRUNE" not in raw:
        return []
    value = raw["PRUNE"]
    if value is None or value is False or isinstance(value, dict):
        return []
    return [
        _error(
            90,
            f'JOBS["PRUNE"] must be a dict, None or False, not {value!r}.',
            'Write e.g. "PRUNE": {"SUCCEEDED_AFTER": 3600}, leave the key out for the '
            "defaults, or set it to None to turn the built-in prune schedule off.",
        )
    ]


@register(TAG)
def check_prune_keys(app_configs=None, **kwargs) -> list[CheckMessage]:
    prune = _prune() or {}
    valid = list(conf.PRUNE_DEFAULTS)
    return [
        _error(
            91,
            f'JOBS["PRUNE"] has an unknown key {key!r}.',
            f"{_closest(key, valid)}Valid keys: {', '.join(valid)}.",
        )
        for key in prune
        if key not in conf.PRUNE_DEFAULTS
    ]


@register(TAG)
def check_prune_cron(app_configs=None, **kwargs) -> list[CheckMessage]:
    from ..recurring.schedule import is_valid_cron

    prune = _prune() or {}
    if "CRON" not in prune:
        return []
    cron = prune["CRON"]
    if is_valid_cron(cron):
        return []
    return [
        _error(
            92,
            f'JOBS["PRUNE"]["CRON"] is not a cron expression: {cron!r}.',
            'Use five fields (minute hour day month weekday), e.g. "17 * * * *" (hourly at '
            ':17, the default), six with seconds first, or an alias such as "@daily".',
        )
    ]


@register(TAG)
def check_prune_ages(app_configs=None, **kwargs) -> list[CheckMessage]:
    prune = _prune() or {}
    return [
        _error(
            93,
            f'JOBS["PRUNE"]["{key}"] must be a number of seconds (0 or more), a '
            f"datetime.timedelta, or None, not {prune[key]!r}.",
            f"E.g. {conf.PRUNE_DEFAULTS[key]} (the default) or timedelta(days=7); None "
            "keeps those rows for ever.",
        )
        for key in AGES
        if key in prune and not _valid_age(prune[key])
    ]


@register(TAG)
def check_prune_batch_size(app_configs=None, **kwargs) -> list[CheckMessage]:
    prune = _prune() or {}
    if "BATCH_SIZE" not in prune:
        return []
    size = prune["BATCH_SIZE"]
    if not _positive_int(size):
        return [
            _error(
                94,
                f'JOBS["PRUNE"]["BATCH_SIZE"] must be a whole number of at least 1, not {size!r}.',
                f"Remove the key to use the default, {conf.PRUNE_DEFAULTS['BATCH_SIZE']}.",
            )
        ]
    if size > MAX_BATCH_SIZE:
        return [
            _error(
                95,
                f'JOBS["PRUNE"]["BATCH_SIZE"] is {size:,}, more than {MAX_BATCH_SIZE:,}: each '
                "batch is one DELETE, and a large one holds its locks for long.",
                f"Use at most {MAX_BATCH_SIZE:,} (the default, "
                f"{conf.PRUNE_DEFAULTS['BATCH_SIZE']:,}, keeps each batch to milliseconds).",
            )
        ]
    return []


@register(TAG)
def check_prune_queue(app_configs=None, **kwargs) -> list[CheckMessage]:
    prune = _prune() or {}
    queues = _declared_queues()
    if prune.get("QUEUE") is None or queues is None or prune["QUEUE"] in queues:
        return []
    queue = prune["QUEUE"]
    return [
        _error(
            96,
            f'JOBS["PRUNE"]["QUEUE"] is {queue!r}, which is not in JOBS["QUEUES"].',
            f"{_closest(queue, queues)}Use one of {', '.join(map(repr, queues))}, or None "
            '(the default: "default" when it is configured, else the first queue).',
        )
    ]
