"""Rows in each state, written directly: the admin reads what workers leave behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from django_jobs.models import Job

TRACEBACK = """Traceback (most recent call last):
  File "/app/jobs.py", line 3, in fail
    raise ValueError(message)
ValueError: boom
"""


def make_job(state: str = "ready", **fields: Any) -> Job:
    now = timezone.now()
    values: dict[str, Any] = {"name": "tests.testapp.jobs.noop", "run_at": now}
    if state == "later":
        values["run_at"] = now + timedelta(hours=1)
    elif state == "running":
        values.update(locked_at=now, locked_by="django-jobs-worker.*.1@host", attempts=1)
    elif state == "failed":
        values.update(run_at=None, failed_at=now, attempts=3, last_error=TRACEBACK)
    elif state == "succeeded":
        values.update(finished_at=now, attempts=1)
    elif state != "ready":
        raise ValueError(state)
    values.update(fields)
    return Job.objects.create(**values)
