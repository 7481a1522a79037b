# Part of the adapted copy of Django 6.1.3's tests/tasks (see README.md in this folder);
# this module is django_jobs' own, not Django's.
"""Settings of a worker process that a test of this suite starts: the test settings,
with the suite's JOBS (its queues, its tasks module allowed, one attempt per task)."""

from tests.settings import *  # noqa: F403
from tests.settings import JOBS as TEST_JOBS

SUITE_JOBS = {
    # The names Django's tests use as valid queues, and the test app's.
    "QUEUES": ["default", "queue_1", "high", "email", "slow"],
    "TASK_MODULES": ["tests.django_suite"],
    "WORKERS": [{"QUEUE": "*", "COUNT": 1, "MAX_ATTEMPTS": 1, "SLEEP_DELAY": 0.1}],
}
JOBS = {**TEST_JOBS, **SUITE_JOBS}
