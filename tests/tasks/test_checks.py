"""Checks E120–E128 of the django.tasks backend and of JOBS["TASK_*"]."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from django_jobs import checks
from django_jobs.tasks import framework
from tests.settings import JOBS as TEST_JOBS
from tests.unit.test_checks import found, only

BACKEND = "django_jobs.tasks.JobsBackend"


def with_tasks(**params) -> list:
    with override_settings(TASKS={"default": {"BACKEND": BACKEND, **params}}):
        return run_checks(tags=[checks.TAG])


def test_the_test_settings_are_clean():
    assert with_tasks() == []
    assert with_tasks(QUEUES=["default", "email"], OPTIONS={"MAX_ATTEMPTS": 2}) == []


def test_e120_the_backend_without_django_jobs_installed():
    from django.apps import apps

    from django_jobs.tasks import JobsBackend

    made = JobsBackend("default", {"BACKEND": BACKEND})
    assert made.check() == []  # installed: the django_jobs checks cover it
    with mock.patch.object(apps, "is_installed", lambda name: name != "django_jobs"):
        [message] = made.check()
    assert message.id == "django_jobs.E120" and "INSTALLED_APPS" in message.hint


def test_e121_a_backend_queue_that_jobs_does_not_have():
    message = only(with_tasks(QUEUES=["default", "emial"]), "django_jobs.E121")
    assert "'emial'" in message.msg and message.hint.startswith("Did you mean 'email'?")
    only(with_tasks(QUEUES="default"), "django_jobs.E121")


@pytest.mark.parametrize("options", [["MAX_ATTEMPTS"], {"MAX_ATTEMTPS": 3}])
def test_e122_options_not_a_dict_or_an_unknown_key(options):
    message = only(with_tasks(OPTIONS=options), "django_jobs.E122")
    if isinstance(options, dict):
        assert message.hint.startswith("Did you mean 'MAX_ATTEMPTS'?")


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True])
def test_e123_max_attempts(value):
    only(with_tasks(OPTIONS={"MAX_ATTEMPTS": value}), "django_jobs.E123")


@pytest.mark.parametrize("value", [0, -1, "30", float("nan")])
def test_e124_timeout(value):
    only(with_tasks(OPTIONS={"TIMEOUT": value}), "django_jobs.E124")


@pytest.mark.parametrize(
    "per_task",
    [["x"], {"app.tasks.t": 3}, {"app.tasks.t": {"RETRIES": 3}}],
)
def test_e125_per_task_options(per_task):
    only(with_tasks(OPTIONS={"TASKS": per_task}), "django_jobs.E125")


def test_per_task_values_are_checked_like_the_backends():
    only(with_tasks(OPTIONS={"TASKS": {"a.b": {"MAX_ATTEMPTS": 0}}}), "django_jobs.E123")


@pytest.mark.parametrize("ttl", [-1, "1d", timedelta(seconds=-1), float("nan")])
def test_e126_task_results_ttl(ttl):
    message = only(found(TASK_RESULTS_TTL=ttl), "django_jobs.E126")
    assert "None keeps them for ever" in message.hint


@pytest.mark.parametrize("ttl", [None, 0, 3600, timedelta(days=7)])
def test_valid_task_results_ttls(ttl):
    assert found(TASK_RESULTS_TTL=ttl) == []


@pytest.mark.parametrize("modules", ["myproject.tasks", ["my project"], [""], [3]])
def test_e127_task_modules(modules):
    only(found(TASK_MODULES=modules), "django_jobs.E127")


def test_e128_no_django_tasks_at_all():
    with mock.patch.object(framework, "available", lambda: None):
        message = only(with_tasks(), "django_jobs.E128")
    assert "django-tasks" in message.hint


def test_django_runs_the_backend_check_without_duplicating_ours():
    import importlib

    django_check = importlib.import_module(f"{framework.load().package}.checks").check_tasks
    with override_settings(
        TASKS={"default": {"BACKEND": BACKEND, "OPTIONS": {"TIMEOUT": -1}}}, JOBS=TEST_JOBS
    ):
        messages = [*django_check(), *run_checks(tags=[checks.TAG])]
    assert [m.id for m in messages] == ["django_jobs.E124"]
