"""Schedule checks E080–E089: one test per id, through Django's ``run_checks``; and workers
refusing to start with the same messages."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_jobs import checks, job
from django_jobs.recurring.scheduler import InvalidSchedule, refuse_invalid_schedules

TEST_JOBS = settings.JOBS
RECORD = "tests.testapp.jobs.record"


def with_schedule(schedule) -> dict:
    return {**TEST_JOBS, "SCHEDULE": schedule}


def found(schedule) -> list:
    with override_settings(JOBS=with_schedule(schedule)):
        return [m for m in run_checks(tags=[checks.TAG]) if m.id.startswith("django_jobs.E08")]


def only(messages, check_id: str):
    assert [m.id for m in messages] == [check_id], [str(m) for m in messages]
    return messages[0]


def entry(**values) -> dict:
    return {"JOB": RECORD, "CRON": "0 2 * * *", "ARGS": ["x"], **values}


def test_a_valid_schedule_is_clean():
    assert found({"nightly": entry(TIMEZONE="Europe/Paris", QUEUE="email", PRIORITY=5)}) == []
    assert (
        found({"s": entry(CRON="*/5 * * * * *"), "d": entry(CRON="@daily", CATCH_UP=False)}) == []
    )


def test_e080_schedule_or_entry_not_a_dict_unknown_or_missing_keys():
    message = only(found(["nightly"]), "django_jobs.E080")
    assert "must be a dict" in message.msg
    message = only(found({"nightly": "0 2 * * *"}), "django_jobs.E080")
    assert "'nightly'" in message.msg and "'nightly'" in message.hint
    message = only(found({"nightly": entry(CRONN="x")}), "django_jobs.E080")
    assert "unknown key 'CRONN'" in message.msg and "Did you mean 'CRON'?" in message.hint
    message = only(found({"nightly": {"JOB": RECORD, "ARGS": ["x"]}}), "django_jobs.E080")
    assert "has no 'CRON'" in message.msg


def test_e081_key_not_a_string():
    message = only(found({3: entry()}), "django_jobs.E081")
    assert "3" in message.msg and "3" in message.hint
    only(found({"x" * 201: entry()}), "django_jobs.E081")


def test_e082_unparsable_expression():
    for bad in ("0 25 * * *", "every day", "@fortnightly", "* * * * * * * *", 5):
        message = only(found({"nightly": entry(CRON=bad)}), "django_jobs.E082")
        assert "nightly" in message.msg and "'nightly'" in message.hint


def test_e083_unknown_job_name_suggests_the_close_one():
    message = only(found({"nightly": entry(JOB="tests.testapp.jobs.recrod")}), "django_jobs.E083")
    assert "not registered" in message.msg
    assert "Did you mean 'tests.testapp.jobs.record'?" in message.hint
    # A dotted path to a function that exists but is not registered is not imported.
    only(found({"nightly": entry(JOB="os.path.join")}), "django_jobs.E083")


def test_e084_unknown_time_zone():
    message = only(found({"nightly": entry(TIMEZONE="Europe/Pariss")}), "django_jobs.E084")
    assert "'Europe/Pariss'" in message.msg and "'nightly'" in message.hint


def test_e085_arguments_that_do_not_bind_or_are_not_json():
    message = only(found({"n": entry(ARGS=[])}), "django_jobs.E085")
    assert "do not fit" in message.msg and "missing" in message.msg
    message = only(found({"n": entry(KWARGS={"slep": 1})}), "django_jobs.E085")
    assert "did you mean 'sleep'?" in message.msg
    message = only(found({"n": entry(ARGS=[{1, 2}])}), "django_jobs.E085")
    assert "not JSON" in message.msg
    only(found({"n": entry(ARGS=[float("nan")])}), "django_jobs.E085")
    only(found({"n": entry(ARGS="x")}), "django_jobs.E085")


def test_e086_unknown_queue():
    message = only(found({"n": entry(QUEUE="emails")}), "django_jobs.E086")
    assert "Did you mean 'email'?" in message.hint


def test_e087_catch_up_not_a_bool():
    message = only(found({"n": entry(CATCH_UP="no")}), "django_jobs.E087")
    assert "'no'" in message.msg


def test_e088_priority_not_an_int():
    only(found({"n": entry(PRIORITY="high")}), "django_jobs.E088")
    only(found({"n": entry(PRIORITY=True)}), "django_jobs.E088")


def test_e082_and_e089_for_job_cron():
    @job(name="tests.bad_cron", cron="61 * * * *")
    def bad_cron():
        pass

    message = only(found({}), "django_jobs.E082")
    assert "@job(cron=...) of tests.bad_cron" in message.msg

    from django_jobs import registry

    registry.unregister("tests.bad_cron")

    @job(name="tests.hourly", cron="@hourly")
    def hourly():
        pass

    message = only(found({"tests.hourly": entry()}), "django_jobs.E089")
    assert "the settings entry wins" in message.msg


def test_workers_refuse_to_start_with_the_checks_message():
    with override_settings(JOBS=with_schedule({"nightly": entry(TIMEZONE="Mars/Olympus")})):
        with pytest.raises(InvalidSchedule, match="E084.*nightly"):
            refuse_invalid_schedules()
        for verb in ("workoff", "work", "start"):
            with pytest.raises(CommandError, match="django_jobs.E084: .*Mars/Olympus"):
                call_command("jobs", verb)
    refuse_invalid_schedules()  # the test settings themselves are fine


def test_e089_settings_key_of_a_builtin_schedule():
    from django_jobs.recurring import schedule as schedule_module

    schedule_module.register_builtin("tests-builtin", lambda: None)
    try:
        message = only(found({"tests-builtin": entry()}), "django_jobs.E089")
        assert "built-in" in message.msg and "'tests-builtin'" in message.hint
    finally:
        schedule_module._builtins.pop("tests-builtin", None)
