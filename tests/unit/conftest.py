"""Fixtures shared by the unit tests."""

import pytest

from django_jobs.storage import get_storage


@pytest.fixture
def limited_storage():
    """The jobs storage with every claim counting concurrency slots, as a worker whose
    registry declares a limit claims (put back after the test)."""
    storage = get_storage()
    storage.limited = True
    yield storage
    storage.limited = False
