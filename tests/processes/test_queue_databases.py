"""A queue in a database of its own, with real ``jobs work`` processes on every engine.

The "reports" queue lives in ``jobs2`` (tests/settings.py): its group's workers claim,
beat and are recovered there; the other queues stay in ``default``.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import override_settings

from django_jobs import later, later_many
from django_jobs.models import Job
from django_jobs.models import Worker as WorkerRow
from tests.conftest import wait_until
from tests.testapp import jobs
from tests.testapp.models import Execution

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True, databases=["default", "jobs2"]),
]

QUEUES = {"default": {}, "email": {}, "slow": {}, "reports": {"DATABASE": "jobs2"}}
WORKERS = [
    {"QUEUE": ["default", "email", "slow"], "COUNT": 1, "SLEEP_DELAY": 0.5, "MAX_ATTEMPTS": 3},
    {"QUEUE": "reports", "COUNT": 2, "SLEEP_DELAY": 0.5, "MAX_ATTEMPTS": 3},
]
ENV = {"DJANGO_JOBS_QUEUES": json.dumps(QUEUES), "DJANGO_JOBS_WORKERS": json.dumps(WORKERS)}


@pytest.fixture
def routed():
    with override_settings(JOBS={**settings.JOBS, "QUEUES": QUEUES, "WORKERS": WORKERS}):
        yield


def test_each_group_claims_from_its_database_and_runs_every_job_once(jobs_cmd, routed):
    supervisor = jobs_cmd("jobs", "work", **ENV)
    wait_until(
        lambda: WorkerRow.objects.using("jobs2").count() == 2 and WorkerRow.objects.count() == 1,
        what="each group's workers to register in its own database",
    )
    later_many(jobs.record, [[f"report{n}"] for n in range(60)], queue="reports")
    later_many(jobs.record, [[f"plain{n}"] for n in range(30)])
    later(jobs.crash, ["crashed-report"], queue="reports")  # its worker dies mid-job
    keys = {f"report{n}" for n in range(60)} | {f"plain{n}" for n in range(30)}
    keys.add("crashed-report")
    wait_until(
        lambda: keys <= set(Execution.objects.values_list("key", flat=True)),
        timeout=60,
        what="every job of both databases",
    )
    ran = list(Execution.objects.exclude(key__endswith=":crashed").values_list("key", flat=True))
    assert sorted(ran) == sorted(keys), "a job ran twice or not at all"
    wait_until(lambda: not Job.objects.using("jobs2").exists() and not Job.objects.exists())
    # The crashed worker's job was recovered in jobs2 by the supervisor, charged one attempt.
    assert "recovered" in supervisor.output() or "died" in supervisor.output()
    reports_pids = set(
        Execution.objects.filter(key__startswith="report").values_list("pid", flat=True)
    )
    plain_pids = set(
        Execution.objects.filter(key__startswith="plain").values_list("pid", flat=True)
    )
    assert not reports_pids & plain_pids, "a worker of one group ran the other's queue"


def test_status_shows_the_workers_and_queues_of_every_database(jobs_cmd, processes, routed):
    jobs_cmd("jobs", "work", **ENV)
    wait_until(lambda: WorkerRow.objects.using("jobs2").count() == 2, what="jobs2 workers")
    later(jobs.record, ["later-report"], queue="reports", wait=3600)
    status = processes("jobs", "status", env=ENV)
    assert status.wait(60) == 0, status.output()
    text = status.output()
    identities = list(WorkerRow.objects.using("jobs2").values_list("identity", flat=True))
    assert all(identity in text for identity in identities), text
    line = next(line for line in text.splitlines() if line.startswith("reports"))
    assert line.rstrip().endswith("jobs2") and " 1 " in line, text
