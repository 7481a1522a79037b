"""Jobs for the worker runtime tests; each records what happened in the Execution table."""

import os
import signal
import time

from django_jobs import job
from tests.testapp.models import Execution

NOTED_TIMEOUT = 600


@job(takes_context=True, queue="slow")
def cooperative(context, key, limit=60.0):
    """Reports progress until the worker stops gracefully, then saves and returns."""
    deadline = time.monotonic() + limit
    step = 0
    while time.monotonic() < deadline:
        step += 1
        context.progress(min(step, 99), f"step {step}")
        if context.should_stop():
            Execution.objects.create(key=f"{key}:stopped", pid=os.getpid())
            return
        time.sleep(0.05)
    Execution.objects.create(key=f"{key}:ran out", pid=os.getpid())


@job
def freeze(key):
    """First attempt: the whole process stops (like a hang in C code, no heartbeat)."""
    if not Execution.objects.filter(key=f"{key}:frozen").exists():
        Execution.objects.create(key=f"{key}:frozen", pid=os.getpid())
        os.kill(os.getpid(), signal.SIGSTOP)
    Execution.objects.create(key=key, pid=os.getpid())


@job(max_attempts=1)
def once(key, sleep=0.0):
    """One attempt only: a crash must never charge it unless it was really running."""
    started = time.time()
    if sleep:
        time.sleep(sleep)
    Execution.objects.create(key=key, pid=os.getpid(), started=started, ended=time.time())


@job(max_attempts=2)
def long_one(key, seconds=30.0):
    """A job long enough to be running when its worker is killed."""
    Execution.objects.create(key=f"{key}:start", pid=os.getpid(), started=time.time())
    time.sleep(seconds)
    Execution.objects.create(key=key, pid=os.getpid(), ended=time.time())


@job(timeout=2, takes_context=True, max_attempts=1)
def progress_in_atomic(context, key, lock_row=False):
    """Reports progress inside its own transaction, then hangs past its timeout; with
    ``lock_row`` its transaction also holds its own row, which the watchdog must write."""
    from django.db import transaction

    from django_jobs.models import Job

    Execution.objects.create(key=f"{key}:start", pid=os.getpid(), started=time.time())
    with transaction.atomic():
        context.progress(10, "inside the transaction")
        if lock_row:
            Job.objects.select_for_update().get(pk=context.job_id)
        time.sleep(30)


@job(timeout=30, queue="slow")
def outlives_max_runtime(key, seconds=8.0):
    """Its own timeout is longer than its group's MAX_RUNTIME in the tests that run it."""
    Execution.objects.create(key=f"{key}:start", pid=os.getpid(), started=time.time())
    time.sleep(seconds)
    Execution.objects.create(key=key, pid=os.getpid(), ended=time.time())


@job(takes_context=True)
def tick(context, key):
    """A recurring job: records which job row ran, so a test can count runs per tick."""
    Execution.objects.create(key=key, job_id=context.job_id, pid=os.getpid(), started=time.time())


@job(takes_context=True, events=True)
def reports_steps(context, steps=5, pause=0.05):
    """Reports progress (published on its channel) and an event of its own per step."""
    for step in range(1, steps + 1):
        time.sleep(pause)
        context.progress(step * 100 // steps, f"step {step}")
        context.publish({"step": step})


@job(events=True, max_attempts=2)
def fails_with_events(key):
    """Fails every attempt: publishes retrying, then failed."""
    raise ValueError(f"{key} failed")


@job(takes_context=True, events=True)
def waits_to_be_cancelled(context, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and not context.should_stop():
        time.sleep(0.05)


# Jobs with hooks, and signal receivers (connected in workers started to observe them).
from tests.processes.app import observed  # noqa: E402, F401


@job(takes_context=True, max_attempts=3)
def on_host(context, key, first=0.1, again=0.1):
    """Sleeps ``first`` seconds on its first attempt and ``again`` on later ones (a job taken
    from a cut-off host is still running elsewhere when that host comes back); records its
    end, with its attempt in ``job_id``."""
    started = time.time()
    time.sleep(first if context.attempt == 1 else again)
    Execution.objects.create(
        key=key, job_id=context.attempt, pid=os.getpid(), started=started, ended=time.time()
    )


@job(max_attempts=1)
def declares_a_job(key):
    """Imports a module that declares a job, in the worker: refused there."""
    import importlib

    Execution.objects.create(key=f"{key}:start", pid=os.getpid())
    importlib.import_module("tests.processes.app.lazy_jobs")
    Execution.objects.create(key=key, pid=os.getpid())


@job(max_attempts=3, takes_context=True, timeout=NOTED_TIMEOUT)
def noted(context, key, seconds=0.005):
    """Notes when its worker started it in the file DJANGO_JOBS_START_LOG (not in the
    database: a start must show even when its worker cannot reach the database), then
    sleeps. The worker's start, not this line's: a process frozen between the two would
    note a later time. It is the deadline less the timeout, on the wall clock."""
    started = context.deadline - NOTED_TIMEOUT + (time.time() - time.monotonic())
    with open(os.environ["DJANGO_JOBS_START_LOG"], "a") as log:
        log.write(f"{key} {os.getpid()} {started} {context.job_id} {context.attempt}\n")
    time.sleep(seconds)
