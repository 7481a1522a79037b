"""The process-test settings with embedded mode on, served by runserver, gunicorn or
uvicorn in tests/processes/test_embedded.py. DJANGO_JOBS_EMBEDDED (JSON) is
``JOBS["EMBEDDED"]``."""

import json
import os

from tests.processes.settings import *  # noqa: F403
from tests.processes.settings import INSTALLED_APPS, JOBS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.processes.embedded"]
ROOT_URLCONF = "tests.processes.embedded.urls"
JOBS = {
    **JOBS,
    "EMBEDDED": json.loads(os.environ.get("DJANGO_JOBS_EMBEDDED", '{"ENABLED": true}')),
}
