"""The table's gauges of a project whose queues live in two jobs databases (``jobs2``):
one scrape reads both, with a ``database`` label, and one database down leaves the
other's gauges."""

from __future__ import annotations

import socket

import pytest
from django.db import connections
from django.utils import timezone

from django_jobs import later, later_many, pause
from django_jobs.metrics.exposition import scrape_registry
from django_jobs.models import Job, Worker
from tests.metrics_text import samples, value
from tests.testapp import jobs
from tests.two_databases import ON_BOTH, routed

pytestmark = [ON_BOTH, pytest.mark.usefixtures("routed_jobs")]


@pytest.fixture
def routed_jobs():
    with routed():
        yield


def scrape() -> str:
    from prometheus_client import generate_latest

    return generate_latest(scrape_registry()).decode()


def test_one_scrape_reads_every_jobs_database_with_a_database_label():
    now = timezone.now()
    later_many(jobs.record, [["r1"], ["r2"]], queue="reports")
    later(jobs.record, ["d1"])
    stray = later(jobs.record, ["stray"])  # left in default by a queue that moved out
    Job.objects.filter(pk=stray.pk).update(queue="reports")
    pause("reports")
    Worker.objects.using("jobs2").create(
        identity="r", host="h", pid=1, queues="reports", heartbeat_at=now
    )
    Worker.objects.create(identity="d", host="h", pid=2, queues="*", heartbeat_at=now)
    Worker.objects.create(identity="e", host="h", pid=3, queues="email", heartbeat_at=now)
    text = scrape()
    assert value(text, "django_jobs_database_up", database="default") == 1
    assert value(text, "django_jobs_database_up", database="jobs2") == 1
    assert value(text, "django_jobs_queue_ready", queue="reports", database="jobs2") == 2
    assert value(text, "django_jobs_queue_ready", queue="reports", database="default") == 1
    assert value(text, "django_jobs_queue_ready", queue="default", database="default") == 1
    assert value(text, "django_jobs_queue_ready", queue="slow", database="default") == 0
    assert value(text, "django_jobs_queue_ready", queue="slow", database="jobs2") is None
    assert value(text, "django_jobs_queue_paused", queue="reports", database="jobs2") == 1
    assert value(text, "django_jobs_queue_workers", queue="reports", database="jobs2") == 1
    assert value(text, "django_jobs_queue_workers", queue="email", database="default") == 2
    assert value(text, "django_jobs_live_workers", database="default") == 2
    assert value(text, "django_jobs_live_workers", database="jobs2") == 1
    # Every gauge of the collector has the label: no series without it.
    gauges = [
        labels
        for (name, labels), _ in samples(text).items()
        if name.startswith(("django_jobs_queue_", "django_jobs_live_", "django_jobs_database_"))
    ]
    assert gauges and all("database" in dict(labels) for labels in gauges)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_database_that_is_down_gives_its_up_0_and_leaves_the_others_gauges():
    later(jobs.record, ["d1"])
    later(jobs.record, ["r1"], queue="reports", wait=60)
    jobs2 = connections["jobs2"]
    jobs2.close()
    saved = dict(jobs2.settings_dict)
    if jobs2.vendor == "sqlite":
        jobs2.settings_dict["NAME"] = "/nonexistent-django-jobs/jobs2.sqlite3"
    else:
        jobs2.settings_dict.update(HOST="127.0.0.1", PORT=str(_closed_port()))
    try:
        text = scrape()
    finally:
        jobs2.close()
        jobs2.settings_dict.clear()
        jobs2.settings_dict.update(saved)
    assert value(text, "django_jobs_database_up", database="jobs2") == 0
    assert value(text, "django_jobs_database_up", database="default") == 1
    assert value(text, "django_jobs_queue_ready", queue="default", database="default") == 1
    assert value(text, "django_jobs_queue_ready", queue="reports", database="jobs2") is None
    assert Job.objects.using("jobs2").count() == 1  # reachable again


def test_a_collector_of_one_database_keeps_the_unlabelled_series():
    from prometheus_client import CollectorRegistry, generate_latest

    from django_jobs.metrics.collector import TableCollector

    later(jobs.record, ["r1"], queue="reports")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TableCollector("jobs2"))
    text = generate_latest(registry).decode()
    assert value(text, "django_jobs_database_up") == 1
    assert value(text, "django_jobs_queue_ready", queue="reports") == 1
    assert value(text, "django_jobs_live_workers") == 0
