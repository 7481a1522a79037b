"""Jobs the tests enqueue; each records its performance in the Execution table."""

import asyncio
import os
import time

from django_jobs import job
from tests.testapp import (
    control_jobs,  # noqa: F401  (registers the unique and retry-policy jobs)
    limit_jobs,  # noqa: F401  (registers the jobs with concurrency limits)
    rate_jobs,  # noqa: F401  (registers the jobs with rate limits)
    typed_jobs,  # noqa: F401  (registers the jobs with typed parameters)
)
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


@job(max_attempts=2)
async def async_cancelled(key):
    """Raises CancelledError itself: that is the job's error, not a request to stop."""
    from asgiref.sync import sync_to_async

    await sync_to_async(Execution.objects.create)(key=key, pid=os.getpid(), started=time.time())
    raise asyncio.CancelledError("cancelled by the job itself")


@job(max_attempts=2)
def keyboard_interrupt(key):
    Execution.objects.create(key=key, pid=os.getpid(), started=time.time())
    raise KeyboardInterrupt


@job(takes_context=True)
async def async_aprogress(context, key):
    await context.aprogress(50, "half")
    from asgiref.sync import sync_to_async

    await sync_to_async(Execution.objects.create)(key=key, pid=os.getpid())


@job(takes_context=True)
async def async_progress(context, key, wait=5.0):
    """``progress()`` from an event loop does not wait for its write: wait for it here, so
    the outcome (which ends the claim the write is guarded by) cannot overtake it."""
    from asgiref.sync import sync_to_async

    from django_jobs.models import Job

    context.progress(60, "sync call")
    deadline = time.monotonic() + wait
    seen = False
    while not seen and time.monotonic() < deadline:
        seen = await sync_to_async(Job.objects.filter(pk=context.job_id, progress=60).exists)()
        if not seen:
            await asyncio.sleep(0.02)
    await sync_to_async(Execution.objects.create)(key=f"{key}:{'seen' if seen else 'unseen'}")


@job(takes_context=True, events=True)
def publishes(context, payload=None):
    """Publishes ``payload`` (or a progress of 50) on its channel, and its outcome."""
    if payload is None:
        context.progress(50, "half")
    else:
        context.publish(payload)


@job(max_attempts=1)
def record_or_fail(key, fail=False, sleep=0):
    """Records ``key`` (start and end times), or fails for good when ``fail``."""
    started = time.time()
    if sleep:
        time.sleep(sleep)
    if fail:
        raise RuntimeError(f"{key} failed on purpose")
    Execution.objects.create(key=key, pid=os.getpid(), started=started, ended=time.time())


@job
def batch_done(tag, batch):
    """A batch callback: records what it was told."""
    Execution.objects.create(
        key=f"{tag}:{batch['id']}:{batch['total']}:{batch['succeeded']}:{batch['failed']}",
        pid=os.getpid(),
        started=time.time(),
    )


@job
def record_at(key, at, fail=False):
    """Ends at wall-clock time ``at`` (two of them end at the same moment), recording."""
    started = time.time()
    time.sleep(max(0.0, at - started))
    if fail:
        raise RuntimeError(f"{key} failed on purpose")
    Execution.objects.create(key=key, pid=os.getpid(), started=started, ended=time.time())
