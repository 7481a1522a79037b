"""Settings of process tests: tests.settings plus what the daemon and restart tests vary.

DJANGO_JOBS_PID_DIR and DJANGO_JOBS_LOG_FILE give each test its own pid file and log;
DJANGO_JOBS_EXTRA_APPS (comma-separated) installs apps from a temporary directory, so a
test can edit a job module without touching the repository.
"""

import json
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

# Metrics (JOBS["METRICS"] as JSON) and, with DJANGO_JOBS_SPANS_FILE, OpenTelemetry spans
# exported to that file, one JSON object a line, by every process of the test.
if os.environ.get("DJANGO_JOBS_METRICS"):
    JOBS["METRICS"] = json.loads(os.environ["DJANGO_JOBS_METRICS"])
if os.environ.get("DJANGO_JOBS_SPANS_FILE"):
    from tests.spans import export_spans_to

    export_spans_to(os.environ["DJANGO_JOBS_SPANS_FILE"])

# DJANGO_JOBS_JSON_LOG: the job records of django_jobs as JSON lines in that file
# (tests/processes/test_job_signals.py reads them back).
if os.environ.get("DJANGO_JOBS_JSON_LOG"):
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "tests.processes.app.jsonlog.JSONFormatter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler"},
            "file": {
                "class": "logging.FileHandler",
                "filename": os.environ["DJANGO_JOBS_JSON_LOG"],
                "formatter": "json",
            },
        },
        "loggers": {"django_jobs": {"handlers": ["console", "file"], "level": "INFO"}},
    }
