"""@job, the registry and .perform()."""

import asyncio

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs import JobNotRegistered, job, registry
from django_jobs.registry import JobDefinition
from tests.testapp import jobs


def test_bare_and_called_decorator_register_by_module_and_qualname():
    @job
    def bare(x):
        return x * 2

    @job(queue="email", priority=3, name="custom.name", max_attempts=7)
    def called(x):
        return x

    assert isinstance(bare, JobDefinition)
    assert bare.name.startswith(f"{__name__}.test_bare_and_called")
    assert bare.name.endswith(".<locals>.bare")
    assert registry.get(bare.name) is bare
    assert (called.name, called.queue, called.priority, called.max_attempts) == (
        "custom.name",
        "email",
        3,
        7,
    )
    assert (bare.queue, bare.priority, bare.max_attempts) == ("default", 50, None)


def test_perform_runs_now_sync_and_async():
    @job
    def double(x):
        return x * 2

    @job
    async def triple(x):
        await asyncio.sleep(0)
        return x * 3

    assert double.perform(4) == 8
    assert triple.perform(4) == 12
    assert double(5) == 10


def test_perform_gives_context_first():
    seen = []

    @job(takes_context=True)
    def with_ctx(context, value):
        seen.append((context.attempt, context.job_id, value, context.should_stop()))

    with_ctx.perform("v")
    assert seen == [(1, None, "v", False)]


def test_two_jobs_with_one_name_is_improperly_configured():
    @job(name="dup.name")
    def first():
        pass

    with pytest.raises(ImproperlyConfigured, match="dup.name"):

        @job(name="dup.name")
        def second():
            pass


def test_bad_declarations_fail_at_definition():
    with pytest.raises(TypeError):
        job(priority="high")(lambda: None)
    with pytest.raises(ValueError):
        job(max_attempts=0)(lambda: None)
    with pytest.raises(ValueError):
        job(timeout=-1)(lambda: None)
    with pytest.raises(TypeError, match="takes_context"):
        job(takes_context=True)(lambda: None)


def test_unknown_names_and_objects_are_rejected():
    with pytest.raises(JobNotRegistered, match="nope.job"):
        registry.get("nope.job")
    with pytest.raises(TypeError, match="is not a job"):
        registry.resolve(print)


def test_autodiscovery_imported_installed_apps_jobs_modules():
    assert registry.get("tests.testapp.jobs.record") is jobs.record


def test_using_returns_a_copy_and_leaves_the_registered_job_alone():
    copy = jobs.record.using(priority=1, queue="email")
    assert copy.options.priority == 1 and copy.options.queue == "email"
    assert jobs.record.options.priority is None
    assert registry.get(jobs.record.name) is jobs.record
