"""Checks of ``JOBS["EVENTS"]`` (django_jobs.events): ids E160–E169."""

from __future__ import annotations

from datetime import timedelta

from django.core.checks import CheckMessage, register

from .. import conf
from .base import TAG, _closest, _error, _is_number, _jobs_is_a_dict, _positive_number, _raw

SECONDS = ("POLL_INTERVAL", "TOKEN_MAX_AGE", "KEEPALIVE")


@register(TAG)
def check_events(app_configs=None, **kwargs) -> list[CheckMessage]:
    if not _jobs_is_a_dict() or "EVENTS" not in _raw():
        return []
    value = _raw()["EVENTS"]
    valid = list(conf.EVENTS_DEFAULTS)
    if not isinstance(value, dict):
        return [
            _error(
                160,
                f'JOBS["EVENTS"] must be a dict, not {value!r}.',
                f'Its keys: {", ".join(valid)}; e.g. {{"RETENTION": 3600}}.',
            )
        ]
    errors = [
        _error(
            160,
            f'JOBS["EVENTS"] has an unknown key {key!r}.',
            f"{_closest(key, valid)}Valid keys: {', '.join(valid)}.",
        )
        for key in value
        if key not in conf.EVENTS_DEFAULTS
    ]
    for key in SECONDS:
        if key in value and not _positive_number(value[key]):
            errors.append(
                _error(
                    161,
                    f'JOBS["EVENTS"]["{key}"] must be a positive number of seconds, '
                    f"not {value[key]!r}.",
                    f"Remove it to use the default, {conf.EVENTS_DEFAULTS[key]!r}.",
                )
            )
    if "RETENTION" in value:
        retention = value["RETENTION"]
        seconds = retention.total_seconds() if isinstance(retention, timedelta) else retention
        if retention is not None and not (_is_number(seconds) and seconds >= 0):
            errors.append(
                _error(
                    162,
                    f'JOBS["EVENTS"]["RETENTION"] must be seconds (or a timedelta) of 0 or '
                    f"more, or None, not {retention!r}.",
                    "It is how long pruning keeps rows of the events table; None keeps them "
                    "for ever. The default is 3600.",
                )
            )
    return errors
