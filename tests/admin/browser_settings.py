"""Settings of the worker process the browser test starts: it serves the "slow" queue only,
so the jobs the test runs in-process stay the test's own."""

from tests.settings import *  # noqa: F403
from tests.settings import JOBS

JOBS = {**JOBS, "WORKERS": [{"QUEUE": ["slow"], "COUNT": 1, "SLEEP_DELAY": 0.1}]}
