"""The jobs the benchmark runs: no-op, 10 ms sync, 10 ms async, and pickup probes; the
typed no-op (``typed.py``) and the limited one (``limited.py``) only in their cases."""

import asyncio
import os
import time

from bench.lib import record_pickup
from django_jobs import job


@job
def noop(i):
    pass


@job
def sleep10(i):
    time.sleep(0.01)


@job
async def asleep10(i):
    await asyncio.sleep(0.01)


@job
def pickup(key):
    record_pickup(key)


if os.environ.get("BENCH_LIMITS"):
    from bench.project.benchapp import limited  # noqa: F401  (registers noop_limited)
if os.environ.get("BENCH_TYPED"):
    from bench.project.benchapp.typed import Line, noop_typed, typed_call  # noqa: F401
