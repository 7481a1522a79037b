"""Jobs the tests enqueue; each records its performance in the Execution table."""

import asyncio
import os
import time

from django_jobs import job
from tests.testapp.models import Execution


@job
def record(key, sleep=0):
    started = time.time()
    if sleep:
        time.sleep(sleep)
    Execution.objects.create(key=key, pid=os.getpid(), started=started, ended=time.time())


@job(queue="email", priority=1)
def send_email(address, subject="hello"):
    Execution.objects.create(key=f"email:{address}:{subject}", pid=os.getpid())


@job
def noop():
    pass


@job
def fail(message="boom"):
    raise ValueError(message)


@job
def fail_once(key):
    """Fails on its first attempt, succeeds on the next."""
    if not Execution.objects.filter(key=f"{key}:tried").exists():
        Execution.objects.create(key=f"{key}:tried", pid=os.getpid())
        raise RuntimeError("first attempt fails")
    Execution.objects.create(key=key, pid=os.getpid())


@job(max_attempts=1)
def fail_for_good():
    raise RuntimeError("never works")


@job
async def async_record(key, sleep=0):
    started = time.time()
    if sleep:
        await asyncio.sleep(sleep)
    from asgiref.sync import sync_to_async

    await sync_to_async(Execution.objects.create)(
        key=key, pid=os.getpid(), started=started, ended=time.time()
    )


@job(takes_context=True)
def with_context(context, key):
    context.progress(50, "half way")
    Execution.objects.create(key=f"{key}:{context.attempt}:{context.job_id}", pid=os.getpid())


@job(timeout=2, max_attempts=2)
def hang(key):
    Execution.objects.create(key=f"{key}:start", pid=os.getpid())
    while True:
        time.sleep(0.1)


@job(queue="slow")
def slow(key, seconds=2.0):
    Execution.objects.create(key=f"{key}:start", pid=os.getpid(), started=time.time())
    time.sleep(seconds)
    Execution.objects.create(key=key, pid=os.getpid(), ended=time.time())


@job
def crash(key, how="exit"):
    if not Execution.objects.filter(key=f"{key}:crashed").exists():
        Execution.objects.create(key=f"{key}:crashed", pid=os.getpid())
        if how == "abort":
            os.abort()
        os._exit(1)
    Execution.objects.create(key=key, pid=os.getpid())
