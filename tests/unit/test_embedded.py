"""Embedded mode's settings, checks, the processes it starts in, and the error for a
queue used before the app registry is ready. Under real servers:
tests/processes/test_embedded.py."""

import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.test import override_settings

from django_jobs import JobsNotReady, checks, conf
from django_jobs.runtime import embedded
from tests.conftest import ROOT

TEST_JOBS = settings.JOBS


def found(**jobs_overrides) -> list:
    with override_settings(JOBS={**TEST_JOBS, **jobs_overrides}):
        return run_checks(tags=[checks.TAG])


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def cpus() -> int:
    return len(os.sched_getaffinity(0))


def test_off_by_default():
    assert conf.parse({}).embedded == conf.EmbeddedSettings()
    assert conf.parse({}).embedded.enabled is False


def test_settings_are_parsed():
    parsed = conf.parse(
        {"EMBEDDED": {"ENABLED": True, "THREADS": 2, "QUEUES": ["email"], "SHUTDOWN_TIMEOUT": 3}}
    ).embedded
    assert parsed == conf.EmbeddedSettings(
        enabled=True, threads=2, queues=("email",), shutdown_timeout=3.0
    )


def test_cpus_is_one_per_cpu_for_groups_and_embedded_threads():
    parsed = conf.parse(
        {"WORKERS": [{"COUNT": "cpus"}, {"COUNT": 3}], "EMBEDDED": {"THREADS": "cpus"}}
    )
    assert [group.count for group in parsed.workers] == [cpus(), 3]
    assert parsed.embedded.threads == cpus()
    assert conf.cpu_count() == cpus()


def test_count_cpus_passes_the_checks_and_a_misspelling_does_not():
    assert found(WORKERS=[{"QUEUE": "*", "COUNT": "cpus"}]) == []
    messages = found(WORKERS=[{"QUEUE": "*", "COUNT": "cpu"}])
    assert ids(messages) == ["django_jobs.E023"]
    assert '"cpus"' in messages[0].msg


def test_valid_embedded_settings_pass_the_checks():
    assert found(EMBEDDED={"ENABLED": True, "THREADS": "cpus", "QUEUES": "*"}) == []
    assert found(EMBEDDED={"ENABLED": False, "QUEUES": ["email", "slow"]}) == []
    assert found(EMBEDDED=None) == []


@pytest.mark.parametrize(
    ("value", "check_id", "words"),
    [
        ([], "django_jobs.E190", 'JOBS["EMBEDDED"] must be a dict'),
        ({"ENABLE": True}, "django_jobs.E191", "unknown key 'ENABLE'"),
        ({"ENABLED": "yes"}, "django_jobs.E192", "must be True or False"),
        ({"THREADS": 0}, "django_jobs.E193", 'at least 1 or "cpus"'),
        ({"THREADS": "all"}, "django_jobs.E193", 'at least 1 or "cpus"'),
        ({"QUEUES": []}, "django_jobs.E194", 'must be "*", a queue name'),
        ({"QUEUES": ["emial"]}, "django_jobs.E194", "names 'emial', which is not in"),
        ({"SHUTDOWN_TIMEOUT": -1}, "django_jobs.E195", "of 0 or more"),
    ],
)
def test_bad_embedded_settings_are_reported(value, check_id, words):
    messages = found(EMBEDDED=value)
    assert ids(messages) == [check_id], [str(m) for m in messages]
    assert words in messages[0].msg
    assert messages[0].hint


def test_the_closest_queue_is_suggested():
    (message,) = found(EMBEDDED={"QUEUES": ["emial"]})
    assert message.hint.startswith("Did you mean 'email'?")


@pytest.mark.parametrize(
    ("argv", "serving"),
    [
        (["manage.py", "runserver"], True),
        (["/srv/app/manage.py", "runserver", "0:8000"], True),
        (["manage.py", "migrate"], False),
        (["manage.py", "jobs", "work"], False),
        ([f"{os.path.dirname(sys.executable)}/django-admin", "shell"], False),
        (["/usr/lib/python3/site-packages/django/__main__.py", "jobs", "worker"], False),
        (["/usr/lib/python3/site-packages/django/__main__.py", "runserver"], True),
        (["/venv/bin/gunicorn", "project.wsgi", "-w", "2"], True),
        (["/venv/bin/uvicorn", "project.asgi:application"], True),
        (["manage.py"], True),
    ],
)
def test_management_commands_other_than_runserver_never_run_it(argv, serving):
    assert embedded.serving(argv) is serving


def test_not_started_under_the_test_environment():
    # pytest-django set up Django's test environment: requests and enqueues start nothing.
    assert embedded._under_tests()


BEFORE_READY = """
import django_jobs
from django_jobs import job

@job
def early():
    pass

for use in (lambda: django_jobs.later, lambda: early.enqueue()):
    try:
        use()
    except django_jobs.JobsNotReady as exc:
        print(type(exc).__mro__[1:3], exc)
"""


def test_using_the_queue_before_the_registry_is_ready_says_what_to_do():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", BEFORE_READY], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.strip().splitlines()
    assert "django_jobs: django_jobs.later was used before Django's app registry is ready" in (
        first
    )
    assert "calls django.setup() first" in first
    assert "AppRegistryNotReady" in first  # still caught by code that catches Django's
    assert "early.enqueue() was used before Django's app registry is ready" in second


def test_jobs_not_ready_is_a_django_jobs_error_and_an_app_registry_error():
    from django.core.exceptions import AppRegistryNotReady

    from django_jobs import JobsError

    error = JobsNotReady("x")
    assert isinstance(error, JobsError) and isinstance(error, AppRegistryNotReady)


@pytest.mark.django_db
def test_jobs_status_names_the_embedded_group(monkeypatch):
    from datetime import timedelta
    from io import StringIO

    from django.core.management import call_command

    from django_jobs import clock
    from django_jobs.models import Worker
    from django_jobs.runtime import daemon

    monkeypatch.setattr(daemon, "running_pid", lambda: None)
    Worker.objects.create(
        identity="django-jobs-embedded.*.41@web-9", host="web-9", pid=41,
        group=conf.EMBEDDED_GROUP, queues="*", heartbeat_at=clock.now() - timedelta(seconds=1),
    )  # fmt: skip
    out = StringIO()
    call_command("jobs", "status", stdout=out)
    text = out.getvalue()
    assert text.split("\n\n")[0].splitlines()[3].split()[:2] == ["web-9", "embedded"]
    workers = text[text.index("Workers (1 registered)") :].splitlines()
    assert workers[3].split()[:2] == ["embedded", "django-jobs-embedded.*.41@web-9"]
