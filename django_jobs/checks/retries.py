"""Checks of the retry policy settings: ``JOBS["MAX_SNOOZES"]``."""

from __future__ import annotations

from django.core.checks import CheckMessage, register

from .base import TAG, _error, _is_int, _raw


@register(TAG)
def check_max_snoozes(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    if "MAX_SNOOZES" not in raw:
        return []
    value = raw["MAX_SNOOZES"]
    if _is_int(value) and value >= 0:
        return []
    return [
        _error(
            100,
            f'JOBS["MAX_SNOOZES"] must be an int >= 0, not {value!r}.',
            "It bounds how many times one job may raise Snooze before it fails (default "
            '100); write e.g. "MAX_SNOOZES": 50, or 0 to fail any job that snoozes.',
        )
    ]
