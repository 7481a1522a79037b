"""Jobs the embedded-mode tests enqueue through HTTP requests; each records its run."""

import os
import time

from django_jobs import job
from tests.testapp.models import Execution


@job(max_attempts=3)
def probe(key, seconds=0.02):
    """Records when it ran and in which process (start and end times, pid)."""
    started = time.time()
    time.sleep(seconds)
    Execution.objects.create(key=key, pid=os.getpid(), started=started, ended=time.time())


@job(max_attempts=1)
def fails(key):
    Execution.objects.create(key=key, pid=os.getpid(), started=time.time())
    raise ValueError(f"embedded failure {key}")


@job(max_attempts=1, timeout=1)
def hangs(key, seconds=6.0):
    """Outlives its timeout: its thread is abandoned, and it records nothing in time."""
    Execution.objects.create(key=f"{key}:start", pid=os.getpid(), started=time.time())
    time.sleep(seconds)
    Execution.objects.create(key=key, pid=os.getpid(), ended=time.time())
