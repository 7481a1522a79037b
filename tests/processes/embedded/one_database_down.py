"""Run by tests/processes/test_queue_databases.py: embedded mode over two jobs databases
while ``jobs2`` cannot be reached. The worker of ``default`` runs its jobs meanwhile; once
``jobs2`` is back, the next enqueue starts its worker again. Prints a JSON report."""

import json
import os
import sys
import time

import django

sys.path.insert(0, os.getcwd())
django.setup()

from django.db import connections  # noqa: E402

from django_jobs.runtime import embedded  # noqa: E402
from tests.processes.embedded.jobs import probe  # noqa: E402
from tests.testapp.models import Execution  # noqa: E402


def performed(key: str, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if Execution.objects.filter(key=key).exists():
            return
        time.sleep(0.05)
    raise SystemExit(f"{key} not performed in {deadline} s")


def running() -> list[str]:
    return sorted(worker.storage.alias for worker in embedded.workers())


embedded.RETRY_AFTER = 1.0
jobs2 = connections.settings["jobs2"]  # what every thread's connection is made from
saved = dict(jobs2)
if jobs2["ENGINE"].endswith("sqlite3"):
    jobs2["NAME"] = "/nonexistent-django-jobs/jobs2.sqlite3"
else:
    jobs2["HOST"], jobs2["PORT"] = "127.0.0.1", "1"  # nothing listens there
embedded.start()
deadline = time.monotonic() + 30
while "jobs2" in running() and time.monotonic() < deadline:
    time.sleep(0.05)
down = running()
probe.enqueue("while-jobs2-is-down")  # default's worker runs it meanwhile
performed("while-jobs2-is-down")
jobs2.clear()
jobs2.update(saved)
time.sleep(embedded.RETRY_AFTER)
probe.using(queue="reports").enqueue("after-jobs2-is-back")  # the enqueue starts it again
performed("after-jobs2-is-back")
report = {"while_down": down, "after": running()}
embedded.stop()
print(json.dumps(report))
