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
from tests.metrics_text import value
from tests.processes import test_embedded
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
#: The real web servers of the embedded-mode tests.
servers = test_embedded.servers

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


def test_tasks_events_and_metrics_of_the_other_database_with_real_workers(
    jobs_cmd, routed, events_idle
):
    from django.test import Client

    from django_jobs import events
    from tests.processes.app import jobs as process_jobs
    from tests.processes.test_events import collect
    from tests.processes.test_observability import free_port, scrape
    from tests.testapp import tasks

    port = free_port()
    jobs_cmd("jobs", "work", DJANGO_JOBS_METRICS=json.dumps({"PORT": port}), **ENV)
    wait_until(
        lambda: WorkerRow.objects.using("jobs2").count() == 2 and WorkerRow.objects.count() == 1,
        what="each group's workers to register in its own database",
    )
    # A django.tasks task of the other database: its result id leads there.
    result = tasks.add.using(queue_name="reports").enqueue(2, 3)
    assert result.id.startswith("jobs2:")

    def succeeded():
        result.refresh()
        return result.status == "SUCCESSFUL"

    wait_until(succeeded, timeout=60, what="the task in jobs2 to succeed")
    assert result.return_value == 5 and tasks.add.get_result(result.id) == result
    # A job of the other database publishes there; its token leads the view there.
    job = process_jobs.reports_steps.using(queue="reports", wait=1).enqueue(steps=3)
    with events.subscribe(events.job_channel(job.pk), using="jobs2") as subscription:
        received = collect(subscription, lambda data: data.get("done"), timeout=60)
    assert [d["progress"] for d in received if "progress" in d] == [33, 66, 100]
    assert received[-1] == {"state": "succeeded", "job_id": job.pk, "done": True}
    body = Client().get(job.events_url).content.decode()
    assert f'"job_id":{job.pk},"state":"gone","done":true' in body  # deleted once done
    # The supervisor's scrape reads both databases.
    text = wait_until(
        lambda: (
            (t := scrape(port))
            and value(t, "django_jobs_live_workers", database="jobs2") == 2
            and t
        ),
        what="the supervisor's metrics of both databases",
    )
    assert value(text, "django_jobs_database_up", database="jobs2") == 1
    assert value(text, "django_jobs_database_up", database="default") == 1
    assert value(text, "django_jobs_live_workers", database="default") == 1
    assert value(text, "django_jobs_queue_workers", queue="reports", database="jobs2") == 2


@pytest.mark.parametrize("queues", ["*", ["default", "reports"]])
def test_embedded_mode_runs_the_queues_of_every_database_in_a_worker_each(servers, queues):
    import urllib.parse

    # Embedded mode alone: no `jobs work`, the web processes run every job.
    server = servers("gunicorn-sync", env=ENV, QUEUES=queues)

    def enqueue(queue: str, start: int) -> None:
        query = {"count": 20, "start": start, "prefix": queue, "queue": queue}
        server.get(f"/enqueue/probe/?{urllib.parse.urlencode(query)}")

    for start in (0, 20):
        enqueue("default", start)
        enqueue("reports", start)  # stored when the request's transaction commits
    wait_until(lambda: Execution.objects.count() == 80, timeout=90, what="80 jobs in two databases")
    keys = sorted(Execution.objects.values_list("key", flat=True))
    assert keys == sorted(f"{q}-{i}" for q in ("default", "reports") for i in range(40))
    # Each outcome is written a moment after its job recorded its run.
    wait_until(lambda: not Job.objects.exists() and not Job.objects.using("jobs2").exists())
    # Each web process that served a request has a worker in each database, registered
    # there (gunicorn may have handed every request to one of its two processes).
    embedded = WorkerRow.objects.filter(identity__startswith="django-jobs-embedded")
    here = sorted(embedded.values_list("pid", flat=True))
    there = sorted(embedded.using("jobs2").values_list("pid", flat=True))
    assert here and here == there
    assert server.stop() == 0
    assert not WorkerRow.objects.exists() and not WorkerRow.objects.using("jobs2").exists()


def test_an_embedded_database_that_is_down_stops_only_its_own_worker():
    import subprocess
    import sys

    from django.db import connections

    from tests.conftest import ROOT, worker_env

    script = ROOT / "tests" / "processes" / "embedded" / "one_database_down.py"
    env = worker_env({"DJANGO_SETTINGS_MODULE": test_embedded.SETTINGS, **ENV})
    connections.close_all()
    run = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report == {"while_down": ["default"], "after": ["default", "jobs2"]}
    assert set(Execution.objects.values_list("key", flat=True)) == {
        "while-jobs2-is-down", "after-jobs2-is-back"
    }  # fmt: skip
