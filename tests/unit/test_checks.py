"""System checks: one test per id, each through Django's own ``run_checks``.

Every test asserts the complete list of django_jobs ids the settings produce, so a bad
value is reported once, by its own check, and never crashes or trips the others.
"""

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings

from django_jobs import checks, job

TEST_JOBS = settings.JOBS

# Adding a database alias is what these checks are about; Django warns that overriding
# DATABASES does not reconfigure open connections, which these tests never use.
overrides_databases = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def found(**jobs_overrides) -> list:
    """The django_jobs messages for ``JOBS`` = the test settings updated with the overrides."""
    with override_settings(JOBS={**TEST_JOBS, **jobs_overrides}):
        return run_checks(tags=[checks.TAG])


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def only(messages, check_id: str):
    assert ids(messages) == [check_id], [str(m) for m in messages]
    return messages[0]


def worker(**group) -> list[dict]:
    return [{"QUEUE": "*", **group}]


def test_the_test_settings_are_clean():
    assert run_checks(tags=[checks.TAG]) == []


@override_settings(JOBS=["QUEUES", "default"])
def test_e001_jobs_is_not_a_dict():
    message = only(run_checks(tags=[checks.TAG]), "django_jobs.E001")
    assert "must be a dict, not list" in message.msg
    assert "JOBS = {" in message.hint


def test_e002_unknown_top_level_key_suggests_the_closest():
    message = only(found(QEUEUS=["default"]), "django_jobs.E002")
    assert "'QEUEUS'" in message.msg
    assert message.hint.startswith("Did you mean 'QUEUES'?")
    assert "DATABASE, QUEUES, WORKERS, HEARTBEAT_TIMEOUT, PID_DIR, LOG_FILE" in message.hint


def test_e002_a_worker_group_key_at_the_top_level_says_it_belongs_in_workers():
    message = only(found(DELETE_SUCCESSFUL_JOBS=False), "django_jobs.E002")
    assert "'DELETE_SUCCESSFUL_JOBS'" in message.msg
    assert "belongs in a WORKERS entry" in message.msg
    assert '"WORKERS": [{"QUEUE": "*", "DELETE_SUCCESSFUL_JOBS": False}]' in message.hint
    message = only(found(MAX_ATTEMPTS=3), "django_jobs.E002")
    assert "belongs in a WORKERS entry" in message.msg and '"MAX_ATTEMPTS": 3}]' in message.hint


def test_e003_database_is_not_a_string():
    message = only(found(DATABASE=1), "django_jobs.E003")
    assert 'JOBS["DATABASE"]' in message.msg and "not 1" in message.msg
    assert "settings.DATABASES" in message.hint


def test_e004_database_is_not_an_alias():
    message = only(found(DATABASE="defualt"), "django_jobs.E004")
    assert "'defualt'" in message.msg
    assert message.hint.startswith("Did you mean 'default'?")


@pytest.mark.parametrize(
    "queues, problem",
    [
        ("default", "non-empty list"),
        ([], "non-empty list"),
        (["default", ""], "'' is not a non-empty string"),
        (["default", "*"], "'*' is reserved"),
        (["q" * 65], "longer than 64 characters"),
    ],
)
def test_e005_queues_is_not_a_list_of_queue_names(queues, problem):
    # An unusable QUEUES must not also trip the checks that compare against it.
    message = only(found(QUEUES=queues, WORKERS=worker(QUEUE="email")), "django_jobs.E005")
    assert problem in message.msg
    assert '["default", "email"]' in message.hint


def test_e006_queues_lists_a_name_twice():
    message = only(found(QUEUES=["default", "email", "default", "slow"]), "django_jobs.E006")
    assert "'default' more than once" in message.msg
    assert message.hint == "List each queue once."
    # The other checks read the queues once each.
    queues = ["default", "email", "slow", "email"]
    messages = found(QUEUES=queues, WORKERS=worker(QUEUE=["default", "slow"]))
    assert ids(messages) == ["django_jobs.E006", "django_jobs.W041"]


@pytest.mark.parametrize("workers", [{"QUEUE": "*"}, [], ["default"], [{}, None]])
def test_e007_workers_is_not_a_list_of_dicts(workers):
    message = only(found(WORKERS=workers), "django_jobs.E007")
    assert "non-empty list of dicts" in message.msg
    assert '[{"QUEUE": "*", "COUNT": 2}]' in message.hint


@pytest.mark.parametrize("value", [0, -1, "60", True, float("nan")])
def test_e008_heartbeat_timeout_is_not_a_positive_number(value):
    message = only(found(HEARTBEAT_TIMEOUT=value), "django_jobs.E008")
    assert "positive number of seconds" in message.msg
    assert message.hint == "Remove the key to use the default, 60."


def test_e009_pid_dir_is_not_a_string():
    message = only(found(PID_DIR=123), "django_jobs.E009")
    assert 'JOBS["PID_DIR"]' in message.msg and "or None" in message.msg
    assert message.hint == "Remove the key to use the default, None."


def test_e010_log_file_is_not_a_string():
    message = only(found(LOG_FILE=["a.log"]), "django_jobs.E010")
    assert 'JOBS["LOG_FILE"]' in message.msg
    assert message.hint == "Remove the key to use the default, None."


def test_e020_unknown_worker_key_names_the_group_and_suggests():
    messages = found(WORKERS=[{"QUEUE": "*"}, {"QUEUE": "email", "THREAD": 4}])
    message = only(messages, "django_jobs.E020")
    assert message.msg == "JOBS[\"WORKERS\"][1] has an unknown key 'THREAD'."
    assert message.hint.startswith("Did you mean 'THREADS'?")
    assert "QUEUE, COUNT, MAX_ATTEMPTS" in message.hint


@pytest.mark.parametrize("value", [3, "", [], ["email", 2]])
def test_e021_worker_queue_has_the_wrong_type(value):
    message = only(found(WORKERS=worker(QUEUE=value)), "django_jobs.E021")
    assert 'JOBS["WORKERS"][0]["QUEUE"]' in message.msg
    assert message.hint == "Remove the key to use the default, '*'."


def test_e022_worker_queue_not_in_queues():
    messages = found(WORKERS=[{"QUEUE": ["default", "emial"]}, {"QUEUE": "*"}])
    message = only(messages, "django_jobs.E022")
    assert "'emial'" in message.msg and 'JOBS["WORKERS"][0]' in message.msg
    assert message.hint.startswith("Did you mean 'email'?")


@pytest.mark.parametrize("value", ["2", 2.0, None, True])
def test_e023_count_is_not_an_int(value):
    message = only(found(WORKERS=worker(COUNT=value)), "django_jobs.E023")
    assert "whole number of processes" in message.msg
    assert message.hint == "Remove the key to use the default, 1."


def test_e024_count_below_one():
    message = only(found(WORKERS=worker(COUNT=0)), "django_jobs.E024")
    assert '["COUNT"] is 0' in message.msg
    assert "COUNT to 1 or more" in message.hint


@pytest.mark.parametrize("value", [0, 2.5, "3"])
def test_e025_max_attempts(value):
    message = only(found(WORKERS=worker(MAX_ATTEMPTS=value)), "django_jobs.E025")
    assert '["MAX_ATTEMPTS"] must be a whole number of at least 1' in message.msg
    assert message.hint == "Remove the key to use the default, 24."


@pytest.mark.parametrize("value", [0, -5, "1h", None])
def test_e026_max_runtime(value):
    message = only(found(WORKERS=worker(MAX_RUNTIME=value)), "django_jobs.E026")
    assert "positive number of seconds" in message.msg
    assert message.hint == "Remove the key to use the default, 14400."


def test_e027_delete_options_are_not_bools():
    messages = found(WORKERS=worker(DELETE_FAILED_JOBS="no", DELETE_SUCCESSFUL_JOBS=0))
    assert ids(messages) == ["django_jobs.E027", "django_jobs.E027"]
    failed, succeeded = sorted(messages, key=lambda m: m.msg)
    assert '["DELETE_FAILED_JOBS"] must be True or False' in failed.msg
    assert '["DELETE_SUCCESSFUL_JOBS"] must be True or False' in succeeded.msg
    assert (failed.hint, succeeded.hint) == (
        "Remove the key to use the default, False.",
        "Remove the key to use the default, True.",
    )


@pytest.mark.parametrize("value", [0, -0.5, "5"])
def test_e028_sleep_delay(value):
    message = only(found(WORKERS=worker(SLEEP_DELAY=value)), "django_jobs.E028")
    assert '["SLEEP_DELAY"] must be a positive number of seconds' in message.msg
    assert message.hint == "Remove the key to use the default, 5."


@pytest.mark.parametrize("value", [0, 1.5, "4"])
def test_e029_threads(value):
    message = only(found(WORKERS=worker(THREADS=value)), "django_jobs.E029")
    assert '["THREADS"] must be a whole number of at least 1' in message.msg
    assert message.hint == "Remove the key to use the default, 1."


def test_e030_async_concurrency():
    message = only(found(WORKERS=worker(ASYNC_CONCURRENCY=0)), "django_jobs.E030")
    assert '["ASYNC_CONCURRENCY"] must be a whole number of at least 1' in message.msg
    assert message.hint == "Remove the key to use the default, 10."


def test_e031_batch_size():
    message = only(found(WORKERS=worker(BATCH_SIZE=-1)), "django_jobs.E031")
    assert '["BATCH_SIZE"] must be a whole number of at least 1' in message.msg
    assert message.hint == "Remove the key to use the default, 100."


def test_e032_max_jobs():
    assert found(WORKERS=worker(MAX_JOBS=None)) == []
    message = only(found(WORKERS=worker(MAX_JOBS=0)), "django_jobs.E032")
    assert '["MAX_JOBS"] must be a whole number of at least 1, or None' in message.msg
    assert message.hint == "Remove the key to use the default, None."


def test_e033_max_memory_mb():
    message = only(found(WORKERS=worker(MAX_MEMORY_MB=512.5)), "django_jobs.E033")
    assert '["MAX_MEMORY_MB"] must be a whole number of megabytes, or None' in message.msg
    assert message.hint == "Remove the key to use the default, None."


def test_e040_registered_job_with_an_unknown_queue_is_named():
    @job(queue="emails")
    def notify(user_id):
        pass

    message = only(found(), "django_jobs.E040")
    assert message.obj == notify.name
    assert "queue='emails'" in message.msg and "UnknownQueue" in message.msg
    assert message.hint.startswith("Did you mean 'email'?")
    assert "Add 'emails' to JOBS[\"QUEUES\"]" in message.hint


def test_w041_queue_served_by_no_worker_group():
    messages = found(WORKERS=[{"QUEUE": "default"}, {"QUEUE": ["email"]}])
    message = only(messages, "django_jobs.W041")
    assert "'slow'" in message.msg and "wait forever" in message.msg
    assert "'QUEUE': '*'" not in message.hint and '"QUEUE": "*"' in message.hint
    assert found(WORKERS=[{"QUEUE": "default"}, {"QUEUE": ["email", "slow"]}]) == []


@overrides_databases
def test_e050_unsupported_database_engine():
    databases = {**settings.DATABASES, "jobs": {"ENGINE": "django.db.backends.dummy"}}
    with override_settings(DATABASES=databases):
        message = only(found(DATABASE="jobs"), "django_jobs.E050")
    assert "'jobs'" in message.msg and "django.db.backends.dummy" in message.msg
    assert "PostgreSQL, MySQL 8.0.1+, MariaDB 10.6+ or SQLite" in message.hint


def sqlite_jobs_database(name, **options) -> dict:
    return {
        **settings.DATABASES,
        "jobs": {"ENGINE": "django.db.backends.sqlite3", "NAME": name, "OPTIONS": options},
    }


@overrides_databases
@pytest.mark.parametrize("name", [":memory:", "file:jobs?mode=memory&cache=shared"])
def test_w051_in_memory_sqlite(name):
    with override_settings(DATABASES=sqlite_jobs_database(name, transaction_mode="IMMEDIATE")):
        message = only(found(DATABASE="jobs"), "django_jobs.W051")
    assert "in-memory SQLite" in message.msg and "worker processes cannot see" in message.msg
    assert "file NAME" in message.hint


@overrides_databases
def test_w052_sqlite_without_immediate_transactions():
    with override_settings(DATABASES=sqlite_jobs_database("/tmp/jobs.sqlite3")):
        message = only(found(DATABASE="jobs"), "django_jobs.W052")
    assert "'jobs'" in message.msg
    assert '["transaction_mode"] = "IMMEDIATE"' in message.hint
    assert '"database is locked"' in message.hint
    assert "WAL mode and a busy timeout are set by django_jobs" in message.hint
    immediate = sqlite_jobs_database("/tmp/jobs.sqlite3", transaction_mode="immediate")
    with override_settings(DATABASES=immediate):
        assert found(DATABASE="jobs") == []


@pytest.mark.parametrize(
    "is_mariadb, version, added",
    [(True, (10, 5, 27), "MariaDB 10.6"), (False, (8, 0, 0), "MySQL 8.0.1")],
)
def test_e053_mysql_or_mariadb_without_skip_locked(is_mariadb, version, added):
    # No such server to connect to: the check's verdict on a version it would read.
    message = only(checks.skip_locked_errors("default", is_mariadb, version), "django_jobs.E053")
    assert "has no SELECT … FOR UPDATE SKIP LOCKED" in message.msg
    assert f"(added in {added})" in message.msg
    assert "Upgrade to MariaDB 10.6+ or MySQL 8.0.1+" in message.hint
    assert checks.skip_locked_errors("default", True, (10, 6, 0)) == []
    assert checks.skip_locked_errors("default", False, (8, 0, 1)) == []


@pytest.mark.django_db
def test_the_database_check_reads_the_real_server_only_when_asked():
    from django.db import connection

    assert run_checks(tags=[checks.TAG], databases=["default"]) == []
    if connection.vendor == "mysql":
        # The real server passed because its version is new enough, not by accident.
        assert (
            checks.skip_locked_errors(
                "default", connection.mysql_is_mariadb, connection.mysql_version
            )
            == []
        )
        assert checks.skip_locked_errors("default", connection.mysql_is_mariadb, (5, 7, 0)), (
            "the same check must fail on an old version"
        )


def postgres_jobs_database() -> dict:
    # Never connected to: the check reads the engine and the installed driver only.
    return {**settings.DATABASES, "jobs": {"ENGINE": "django.db.backends.postgresql"}}


@pytest.mark.parametrize("version", ["3.1.19", "3.0", "3.1.0.dev1"])
def test_w054_psycopg_without_notifies_timeout(version):
    message = only(checks.psycopg_warnings("jobs", version), "django_jobs.W054")
    assert f"psycopg {version}" in message.msg
    assert "notifies(timeout=…)" in message.msg
    assert '"psycopg[binary]>=3.2"' in message.hint


@pytest.mark.parametrize("version", ["3.2.0", "3.2.10", "3.3.9", "4.0"])
def test_w054_is_quiet_from_psycopg_3_2(version):
    assert checks.psycopg_warnings("jobs", version) == []


@overrides_databases
def test_w054_reads_the_installed_psycopg(monkeypatch):
    psycopg = pytest.importorskip("psycopg")
    with override_settings(DATABASES=postgres_jobs_database()):
        # The installed driver (the dev extra requires 3.2+) passes ...
        assert found(DATABASE="jobs") == []
        # ... and the registered check reads the driver's own version, not a constant.
        monkeypatch.setattr(psycopg, "__version__", "3.1.18")
        message = only(found(DATABASE="jobs"), "django_jobs.W054")
    assert "'jobs'" in message.msg and "psycopg 3.1.18" in message.msg
    # Only for PostgreSQL: a SQLite jobs database is left alone whatever psycopg is.
    sqlite = sqlite_jobs_database("/tmp/jobs.sqlite3", transaction_mode="IMMEDIATE")
    with override_settings(DATABASES=sqlite):
        assert found(DATABASE="jobs") == []


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Paris")
def test_w060_use_tz_false_says_job_times_are_utc():
    message = only(run_checks(tags=[checks.TAG]), "django_jobs.W060")
    assert "USE_TZ is False" in message.msg and "in UTC, not in TIME_ZONE ('Europe/Paris')" in (
        message.msg
    )
    assert "wait_until" in message.hint and "SILENCED_SYSTEM_CHECKS" in message.hint
