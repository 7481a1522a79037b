"""The database's clock, and a worker following it when its host's clock is off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from django_jobs import clock
from django_jobs.storage import get_storage


@pytest.fixture
def following():
    """Restore this process's clock after a test made it follow a fake database."""
    yield
    clock._offset = 0.0


@pytest.mark.django_db
def test_the_database_clock_is_utc_as_django_jobs_stores_times():
    read = get_storage().database_now()
    assert read.tzinfo is not None  # USE_TZ = True in the tests
    # The database runs on this machine: its clock is this one.
    assert abs(read - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_database_ten_minutes_ahead_is_followed(following):
    ahead = clock.follow_database(lambda: datetime.now(UTC) + timedelta(minutes=10))
    assert abs(clock.offset() - 600) < 1
    assert abs(clock.now() - ahead) < timedelta(seconds=1)
    assert abs(clock.at(datetime.now(UTC).timestamp()) - ahead) < timedelta(seconds=1)


def test_differences_within_the_tolerance_are_not_followed(following):
    clock.follow_database(lambda: datetime.now(UTC) + timedelta(seconds=clock.TOLERANCE / 5))
    assert clock.offset() == 0.0
    # A naive UTC time (USE_TZ = False, or a driver without time zones) reads the same.
    clock.follow_database(lambda: datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1))
    assert abs(clock.offset() + 3600) < 1


@pytest.mark.parametrize("text", ["2026-11-27 08:00:00.125", "2026-11-27 08:00:00"])
def test_sqlite_text_from_the_database_reads_as_utc(text):
    assert clock.from_database(text) == datetime(2026, 11, 27, 8, 0, 0, 125000 * ("." in text),
                                                 tzinfo=UTC)  # fmt: skip
