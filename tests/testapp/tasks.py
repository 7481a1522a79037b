"""django.tasks tasks of the test app (run by django_jobs.tasks.JobsBackend)."""

import asyncio
import os
import time

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task

from tests.testapp.models import Execution

try:
    task(max_attempts=1)
except TypeError:  # Django 6.0: @task passes no options to the backend; tests/settings.py
    # sets the same ones for these tasks in the backend's OPTIONS["TASKS"] instead.

    def task_with(**kwargs):
        return task(**{k: v for k, v in kwargs.items() if k not in ("max_attempts", "timeout")})
else:
    task_with = task


@task
def add(a, b):
    return a + b


@task(takes_context=True)
def flaky(context, key, fail_times=1):
    """Fails its first ``fail_times`` attempts, then returns the attempt number."""
    Execution.objects.create(key=f"{key}:{context.attempt}", pid=os.getpid())
    if context.attempt <= fail_times:
        raise ValueError(f"attempt {context.attempt} fails")
    return {"attempt": context.attempt, "result_id": context.task_result.id}


@task
def fail(message="boom"):
    raise RuntimeError(message)


@task
def returns_object():
    return object()


@task
def returns_tuple():
    return (1, ("a", b"b"))


@task
async def async_add(a, b):
    await asyncio.sleep(0)
    return a + b


@task(queue_name="email")
def record(key):
    Execution.objects.create(key=key, pid=os.getpid(), started=time.time())
    return key


@task
def sleeper(key, seconds=30.0):
    Execution.objects.create(key=f"{key}:start", pid=os.getpid(), started=time.time())
    time.sleep(seconds)
    Execution.objects.create(key=key, pid=os.getpid(), ended=time.time())
    return key


not_a_task = add.func


@task(takes_context=True)
def waits_for_go(context, key, limit=30.0):
    """Runs until the test creates Execution ``key:go``: the test sees it RUNNING."""
    Execution.objects.create(key=f"{key}:start:{context.attempt}", pid=os.getpid())
    deadline = time.monotonic() + limit
    while not Execution.objects.filter(key=f"{key}:go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{key}: no go within {limit} s")
        time.sleep(0.05)
    return {"key": key, "attempt": context.attempt}


@task(takes_context=True)
def crashes_first(context, key):
    """First attempt: hangs (the test kills its worker); later attempts return at once."""
    Execution.objects.create(key=f"{key}:{context.attempt}", pid=os.getpid())
    if context.attempt == 1:
        time.sleep(60)
    return context.attempt


@task(queue_name="email")
def ordered(key):
    Execution.objects.create(key=key, pid=os.getpid(), started=time.time())


@task_with(takes_context=True, max_attempts=1)
def crashes_once_only(context, key):
    """Like crashes_first, with one attempt: a lost worker makes it FAILED."""
    Execution.objects.create(key=f"{key}:{context.attempt}", pid=os.getpid())
    time.sleep(60)


try:  # Django 6 with the backport installed too: libraries (Wagtail) declare tasks so
    import django.tasks  # noqa: F401
    from django_tasks import task as backport_task
except ImportError:
    backport_task = None

if backport_task is not None:

    @backport_task(priority=10)
    def through_backport(x):
        return x * 2


@task_with(timeout=1, max_attempts=1)
def overruns(seconds=30.0):
    time.sleep(seconds)


@task(takes_context=True)
def stalls_first(context, key):
    """Attempt 1 waits for Execution ``key:release`` (its worker is frozen meanwhile and
    the task recovered); later attempts return at once."""
    Execution.objects.create(key=f"{key}:{context.attempt}", pid=os.getpid())
    if context.attempt == 1:
        deadline = time.monotonic() + 60
        while not Execution.objects.filter(key=f"{key}:release").exists():
            if time.monotonic() > deadline:
                raise TimeoutError("no release")
            time.sleep(0.05)
        Execution.objects.create(key=f"{key}:done:1", pid=os.getpid())
        return "first"
    return "second"


@task(takes_context=True)
def controls(context, how):
    """Raises django_jobs' Retry, Snooze or Discard from a task."""
    from django_jobs.exceptions import Discard, Retry, Snooze

    Execution.objects.create(key=f"{how}:{context.attempt}", pid=os.getpid())
    if how == "discard":
        raise Discard("not worth it")
    if how == "snooze" and Execution.objects.filter(key="snooze:1").count() == 1:
        raise Snooze(0)  # the second run is attempt 1 again: a snooze spends none
    if how == "retry" and context.attempt == 1:
        raise Retry(0)
    return how
