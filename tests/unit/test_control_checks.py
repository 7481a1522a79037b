"""System check E100 for ``JOBS["MAX_SNOOZES"]``, and how the value is parsed."""

import pytest
from django.test import override_settings

from django_jobs.conf import jobs_settings
from tests.settings import JOBS as TEST_JOBS
from tests.unit.test_checks import found, only


@pytest.mark.parametrize("value", [0, 1, 100, 10_000])
def test_valid_values_are_clean_and_used(value):
    assert found(MAX_SNOOZES=value) == []
    with override_settings(JOBS={**TEST_JOBS, "MAX_SNOOZES": value}):
        assert jobs_settings().max_snoozes == value


@pytest.mark.parametrize("value", [-1, 2.5, "100", True, None, [5]])
def test_e100_max_snoozes_is_not_an_int_of_zero_or_more(value):
    message = only(found(MAX_SNOOZES=value), "django_jobs.E100")
    assert repr(value) in message.msg and '"MAX_SNOOZES": 50' in message.hint
    with override_settings(JOBS={**TEST_JOBS, "MAX_SNOOZES": value}):
        assert jobs_settings().max_snoozes in (0, 100)  # never a bad value


def test_the_default_is_100():
    assert jobs_settings().max_snoozes == 100
