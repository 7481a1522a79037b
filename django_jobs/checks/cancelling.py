"""Checks of the settings of job controls owned by cancellation: ``JOBS["CANCEL_GRACE"]``."""

from __future__ import annotations

from datetime import timedelta

from django.core.checks import CheckMessage, register

from .base import TAG, _error, _is_number, _jobs_is_a_dict, _raw

#: Beyond this a grace period is no grace: a cancelled job would hold its worker for days.
MAX_GRACE = 24 * 3600


@register(TAG)
def check_cancel_grace(app_configs=None, **kwargs) -> list[CheckMessage]:
    if not _jobs_is_a_dict():
        return []
    raw = _raw()
    if "CANCEL_GRACE" not in raw:
        return []
    value = raw["CANCEL_GRACE"]
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if _is_number(seconds) and 0 <= seconds <= MAX_GRACE:  # NaN fails both
        return []
    return [
        _error(
            110,
            f'JOBS["CANCEL_GRACE"] must be a number of seconds from 0 to {MAX_GRACE}, '
            f"not {value!r}.",
            "It is how long a cancelled running job has to stop before its worker process "
            'is stopped; e.g. "CANCEL_GRACE": 5 (the default), or 0 to stop it at once.',
        )
    ]
