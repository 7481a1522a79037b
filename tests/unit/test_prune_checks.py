"""System checks E090–E096 for ``JOBS["PRUNE"]``, and how its values are parsed."""

from datetime import timedelta

import pytest
from django.test import override_settings

from django_jobs.conf import jobs_settings
from tests.unit.test_checks import found, only


def prune(**options):
    return found(PRUNE=options)


@pytest.mark.parametrize("value", [None, False, {}, {"CRON": "@daily", "FAILED_AFTER": None}])
def test_valid_values_are_clean(value):
    assert found(PRUNE=value) == []


@pytest.mark.parametrize("value", [True, "hourly", 3600, ["CRON"]])
def test_e090_prune_is_not_a_dict_none_or_false(value):
    message = only(found(PRUNE=value), "django_jobs.E090")
    assert repr(value) in message.msg and "None" in message.hint


def test_e091_unknown_key_suggests_the_closest():
    message = only(prune(SUCCEDED_AFTER=60), "django_jobs.E091")
    assert "'SUCCEDED_AFTER'" in message.msg
    assert message.hint.startswith("Did you mean 'SUCCEEDED_AFTER'?")


@pytest.mark.parametrize("cron", ["61 * * * *", "hourly", "", 17, None])
def test_e092_cron_is_not_a_cron_expression(cron):
    message = only(prune(CRON=cron), "django_jobs.E092")
    assert repr(cron) in message.msg and '"17 * * * *"' in message.hint


@pytest.mark.parametrize("key", ["SUCCEEDED_AFTER", "FAILED_AFTER", "HISTORY_AFTER"])
@pytest.mark.parametrize("value", [-1, "1d", True, timedelta(seconds=-5), float("nan")])
def test_e093_an_age_is_not_seconds_a_timedelta_or_none(key, value):
    message = only(prune(**{key: value}), "django_jobs.E093")
    assert f'["{key}"]' in message.msg and "timedelta(days=7)" in message.hint


@pytest.mark.parametrize("size", [0, -3, 1.5, "100", None, True])
def test_e094_batch_size_is_not_a_positive_whole_number(size):
    message = only(prune(BATCH_SIZE=size), "django_jobs.E094")
    assert message.hint == "Remove the key to use the default, 1000."


def test_e095_batch_size_too_large_for_a_short_transaction():
    message = only(prune(BATCH_SIZE=50_000), "django_jobs.E095")
    assert "50,000" in message.msg and "at most 10,000" in message.hint
    assert prune(BATCH_SIZE=10_000) == []


def test_e096_queue_not_in_queues():
    message = only(prune(QUEUE="emails"), "django_jobs.E096")
    assert message.hint.startswith("Did you mean 'email'?")


def test_the_built_in_job_needs_no_default_queue():
    # A project without a "default" queue: the built-in job is not reported (E040), and
    # the schedule goes to the first queue.
    messages = found(QUEUES=["email", "slow"], PRUNE={})
    reported = {m.obj for m in messages if m.id == "django_jobs.E040"}
    assert "tests.testapp.jobs.record" in reported and "django_jobs.prune" not in reported
    with override_settings(JOBS={"QUEUES": ["email", "slow"]}):
        assert jobs_settings().prune.queue == "email"


def test_parsing_is_lenient_and_none_or_false_turns_the_schedule_off():
    with override_settings(JOBS={"PRUNE": {"BATCH_SIZE": -1, "SUCCEEDED_AFTER": "x"}}):
        parsed = jobs_settings().prune
        assert parsed.enabled and parsed.batch_size == 1000
        assert parsed.succeeded_after == timedelta(days=1)
    with override_settings(JOBS={"PRUNE": {"HISTORY_AFTER": 60, "FAILED_AFTER": None}}):
        parsed = jobs_settings().prune
        assert parsed.history_after == timedelta(minutes=1) and parsed.failed_after is None
    for off in (None, False):
        with override_settings(JOBS={"PRUNE": off}):
            assert not jobs_settings().prune.enabled
    with override_settings(JOBS={}):
        parsed = jobs_settings().prune
        assert parsed.enabled and parsed.cron == "17 * * * *" and parsed.queue == "default"
