"""Helpers for the tests of a project that uses django_jobs.

``run_jobs()`` performs enqueued jobs in the test's own thread and transaction, with the
worker's claim, outcome and record code, so retries, back-off, attempt limits and the
DELETE_* options behave as in production. ``assert_enqueued()`` and friends read the jobs
table. See docs/howto/testing.md.

Why not a real worker in-process: a worker starts heartbeat and watchdog threads with
database connections of their own, which cannot see the rows of an uncommitted test
transaction (and on SQLite would wait for its write lock).
"""

from .assertions import assert_enqueued, assert_not_enqueued, capture_jobs, enqueued_jobs
from .running import JobError, RunResult, run_jobs

__all__ = [
    "JobError",
    "RunResult",
    "assert_enqueued",
    "assert_not_enqueued",
    "capture_jobs",
    "enqueued_jobs",
    "run_jobs",
]
