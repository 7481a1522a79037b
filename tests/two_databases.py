"""The settings of the tests that keep the "reports" queue in the ``jobs2`` database."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

QUEUES = {"default": {}, "email": {}, "slow": {}, "reports": {"DATABASE": "jobs2"}}
WORKERS = [
    {"QUEUE": ["default", "email", "slow"], "MAX_ATTEMPTS": 3},
    {"QUEUE": "reports", "MAX_ATTEMPTS": 3},
]
#: Both databases, committed for real: workers and other connections read the rows.
ON_BOTH = pytest.mark.django_db(transaction=True, databases=["default", "jobs2"])


def routed(workers: list[dict] = WORKERS) -> override_settings:
    """``JOBS`` with the "reports" queue in jobs2 and a worker group for each database."""
    return override_settings(JOBS={**settings.JOBS, "QUEUES": QUEUES, "WORKERS": workers})
