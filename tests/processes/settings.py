"""Settings of process tests: tests.settings plus what the daemon and restart tests vary.

DJANGO_JOBS_PID_DIR and DJANGO_JOBS_LOG_FILE give each test its own pid file and log;
DJANGO_JOBS_EXTRA_APPS (comma-separated) installs apps from a temporary directory, so a
test can edit a job module without touching the repository.
"""

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, JOBS

JOBS = {
    **JOBS,
    "PID_DIR": os.environ.get("DJANGO_JOBS_PID_DIR") or None,
    "LOG_FILE": os.environ.get("DJANGO_JOBS_LOG_FILE") or None,
}

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "tests.processes.app",
    *filter(None, os.environ.get("DJANGO_JOBS_EXTRA_APPS", "").split(",")),
]
