"""Prometheus metrics in one process: the table's gauges and their query plans, the view,
the counters, the checks (E150–E154), and a project without prometheus-client."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_jobs import later, later_many, pause
from django_jobs.conf import jobs_settings
from django_jobs.metrics import collector, counters, exposition
from django_jobs.metrics.exposition import scrape_registry
from django_jobs.models import Job, Worker
from django_jobs.runtime.exporter import exporter_for_supervisor
from django_jobs.testing import run_jobs
from tests.conftest import ROOT
from tests.metrics_text import total, value
from tests.settings import JOBS as TEST_JOBS
from tests.testapp import jobs
from tests.unit.test_checks import found, only

pytestmark = pytest.mark.django_db(transaction=True)

METRICS_ON = {**TEST_JOBS, "METRICS": {}}


def scrape() -> str:
    from prometheus_client import generate_latest

    return generate_latest(scrape_registry()).decode()


# -- the table's gauges ---------------------------------------------------------------------


def test_gauges_show_ready_jobs_the_oldest_running_ones_paused_queues_and_workers():
    now = timezone.now()
    later_many(jobs.record, [["a"], ["b"], ["c"]])
    Job.objects.filter(args=["a"]).update(run_at=now - timedelta(seconds=90))
    later(jobs.record, ["later"], wait=3600)  # not ready: no part of the depth
    later(jobs.send_email, ["x@example.com"])
    running = later(jobs.record, ["running"])
    Job.objects.filter(pk=running.pk).update(locked_at=now, locked_by="w")
    pause("email")
    Worker.objects.create(identity="w1", host="h", pid=1, queues="*", heartbeat_at=now)
    Worker.objects.create(identity="w2", host="h", pid=2, queues="email+slow", heartbeat_at=now)
    Worker.objects.create(
        identity="dead", host="h", pid=3, queues="*", heartbeat_at=now - timedelta(days=1)
    )
    text = scrape()
    assert value(text, "django_jobs_database_up") == 1
    assert value(text, "django_jobs_queue_ready", queue="default") == 3
    assert value(text, "django_jobs_queue_ready", queue="email") == 1
    assert value(text, "django_jobs_queue_ready", queue="slow") == 0  # configured: always shown
    assert 89 <= value(text, "django_jobs_queue_oldest_ready_age_seconds", queue="default") < 120
    assert value(text, "django_jobs_queue_oldest_ready_age_seconds", queue="slow") == 0
    assert value(text, "django_jobs_queue_running", queue="default") == 1
    assert value(text, "django_jobs_queue_paused", queue="email") == 1
    assert value(text, "django_jobs_queue_paused", queue="default") == 0
    assert value(text, "django_jobs_queue_workers", queue="default") == 1
    assert value(text, "django_jobs_queue_workers", queue="email") == 2
    assert value(text, "django_jobs_live_workers") == 2


def test_a_queue_with_rows_that_is_not_configured_is_shown_too():
    job = later(jobs.record, ["x"])
    Job.objects.filter(pk=job.pk).update(queue="retired")
    assert value(scrape(), "django_jobs_queue_ready", queue="retired") == 1


def test_an_unreachable_database_gives_database_up_0_and_no_gauges(monkeypatch):
    from django.db import OperationalError

    def down(alias, configured=None):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(collector, "read_state", down)
    text = scrape()
    assert value(text, "django_jobs_database_up") == 0
    assert "django_jobs_queue_ready" not in text


def _plans() -> list[str]:
    """EXPLAIN output of the collector's two queries on the job table."""
    jobs_table = Job.objects.order_by()
    querysets = [
        collector.ready_by_queue(jobs_table, timezone.now()),
        collector.running_by_queue(jobs_table),
    ]
    plans = []
    for queryset in querysets:
        sql, params = queryset.query.sql_with_params()
        prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql, params)
            plans.append("\n".join(" ".join(str(c) for c in r) for r in cursor.fetchall()))
    return plans


def test_the_gauge_queries_are_served_by_indexes_beside_many_dead_and_future_rows():
    from tests.unit.test_claim_index import fill_table

    fill_table(ready=20)  # 1,500 failed rows, 1,500 an hour away, 20 ready
    running = Job.objects.filter(args__0__startswith="r").order_by("pk")[:5]
    Job.objects.filter(pk__in=[j.pk for j in running]).update(
        locked_at=timezone.now(), locked_by="w"
    )
    ready_plan, running_plan = _plans()
    expected = {
        "postgresql": (
            ("django_jobs_due_idx", "django_jobs_claim_idx"),
            ("django_jobs_locked_idx", "django_jobs_owner_idx"),
        ),
        "sqlite": (("django_jobs_due_idx", "django_jobs_claim_idx"), ("django_jobs_locked_idx",)),
        "mysql": (
            ("django_jobs_due_my_idx", "django_jobs_claim_my_idx"),
            ("django_jobs_locked_my_idx",),
        ),
    }[connection.vendor]
    for plan, indexes in ((ready_plan, expected[0]), (running_plan, expected[1])):
        assert any(index in plan for index in indexes), plan
        if connection.vendor == "postgresql":
            assert "Seq Scan" not in plan, plan
        elif connection.vendor == "sqlite":
            assert "SCAN django_jobs_job\n" not in plan + "\n", plan
        else:
            assert " ALL " not in f" {plan} ", plan
    assert value(scrape(), "django_jobs_queue_ready", queue="default") == 15


# -- counters and the view ------------------------------------------------------------------


def test_counters_in_this_process_add_up_by_job_name_and_queue():
    before = scrape()
    name = "tests.testapp.jobs.record"
    counters.count_outcome("succeeded", name, "default", 0.2)
    counters.count_outcome("retried", name, "default", 3.0)
    counters.count_outcome("cancelled", name, "default", None)  # never ran: no duration
    counters.count_enqueued(name, "email", 5)
    after = scrape()

    def delta(metric, **labels):
        return total(after, metric, **labels) - total(before, metric, **labels)

    assert delta("django_jobs_succeeded_total", job_name=name, queue="default") == 1
    assert delta("django_jobs_retried_total", job_name=name, queue="default") == 1
    assert delta("django_jobs_cancelled_total", job_name=name, queue="default") == 1
    assert delta("django_jobs_enqueued_total", job_name=name, queue="email") == 5
    assert delta("django_jobs_duration_seconds_count", job_name=name, queue="default") == 2
    assert delta("django_jobs_duration_seconds_sum", job_name=name, queue="default") == 3.2
    assert delta("django_jobs_duration_seconds_bucket", job_name=name, le="0.25") == 1


def test_the_view_serves_prometheus_text_and_openmetrics_and_only_get(client):
    later(jobs.record, ["x"])
    response = client.get("/jobs-metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert value(response.content.decode(), "django_jobs_queue_ready", queue="default") == 1
    response = client.get("/jobs-metrics/", HTTP_ACCEPT="application/openmetrics-text")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")
    assert client.post("/jobs-metrics/").status_code == 405


def test_the_view_says_what_to_install_without_prometheus_client(client, monkeypatch):
    monkeypatch.setattr(exposition, "AVAILABLE", False)
    response = client.get("/jobs-metrics/")
    assert response.status_code == 501
    assert b"pip install 'django-dbjobs[prometheus]'" in response.content


def test_the_view_reads_a_multiprocess_directory_when_the_process_has_one(
    client, monkeypatch, tmp_path
):
    from prometheus_client import CollectorRegistry, Counter, values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    # What another process of the web server wrote (as gunicorn workers do).
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue(lambda: 4242))
    Counter(
        "django_jobs_enqueued", "Jobs stored.", ("job_name", "queue"),
        registry=CollectorRegistry(),
    ).labels("x.y", "default").inc(7)  # fmt: skip
    text = client.get("/jobs-metrics/").content.decode()
    assert value(text, "django_jobs_enqueued_total", job_name="x.y", queue="default") == 7
    assert value(text, "django_jobs_database_up") == 1


# -- settings and checks ----------------------------------------------------------------------


def test_metrics_settings_are_parsed_leniently():
    assert jobs_settings().metrics is None
    with override_settings(JOBS={**TEST_JOBS, "METRICS": {"PORT": 9108}}):
        assert jobs_settings().metrics.port == 9108
        assert jobs_settings().metrics.address == "127.0.0.1"
        assert counters.counting()
        assert exporter_for_supervisor() is not None
    with override_settings(JOBS={**TEST_JOBS, "METRICS": {"PORT": "9108", "ADDRESS": ""}}):
        assert jobs_settings().metrics.port is None
        assert jobs_settings().metrics.address == "127.0.0.1"
        assert exporter_for_supervisor() is None  # no port: the view alone
    with override_settings(JOBS=METRICS_ON):
        assert counters.counting()


@pytest.mark.parametrize(
    "metrics", [None, {}, {"PORT": 9108}, {"PORT": None, "ADDRESS": "0.0.0.0"}]
)
def test_valid_metrics_settings_are_clean(metrics):
    assert found(METRICS=metrics) == []


def test_e150_metrics_is_not_a_dict():
    message = only(found(METRICS=9108), "django_jobs.E150")
    assert '"METRICS": {"PORT": 9108}' in message.hint


def test_e151_unknown_key_in_metrics():
    message = only(found(METRICS={"POTR": 9108}), "django_jobs.E151")
    assert "Did you mean 'PORT'?" in message.hint


@pytest.mark.parametrize("port", [0, 65536, "9108", True, 91.08])
def test_e152_port_is_not_a_tcp_port(port):
    assert repr(port) in only(found(METRICS={"PORT": port}), "django_jobs.E152").msg


@pytest.mark.parametrize("address", ["", 0, None])
def test_e153_address_is_not_an_address(address):
    only(found(METRICS={"ADDRESS": address}), "django_jobs.E153")


def test_e154_metrics_without_prometheus_client(monkeypatch):
    from django_jobs.metrics import installed

    monkeypatch.setattr(installed, "AVAILABLE", False)
    message = only(found(METRICS={"PORT": 9108}), "django_jobs.E154")
    assert "pip install 'django-dbjobs[prometheus]'" in message.hint
    assert found(METRICS=None) == []


def test_the_check_ids_are_documented():
    text = (ROOT / "docs" / "reference" / "checks.md").read_text()
    for number in range(150, 156):
        assert f"### django_jobs.E{number}" in text


HIDDEN = """
import sys
sys.modules["prometheus_client"] = None
sys.modules["opentelemetry"] = None
import django
django.setup()
from django.core.checks import run_checks
from django.core.management import call_command
from django_jobs import later, metrics, tracing
from tests.testapp import jobs
assert not metrics.AVAILABLE and not tracing.AVAILABLE
print(sorted(m.id for m in run_checks(tags=["django_jobs"])))
job = later(jobs.noop, [])
call_command("jobs", "workoff")
from django_jobs.models import Job
print("left", Job.objects.filter(pk=job.pk).count())  # succeeded: deleted
"""


def test_without_the_packages_jobs_run_and_the_check_says_what_to_install():
    from tests.conftest import worker_env

    env = worker_env({"DJANGO_JOBS_METRICS": '{"PORT": 9108}'})
    env["DJANGO_SETTINGS_MODULE"] = "tests.processes.settings"
    done = subprocess.run(
        [sys.executable, "-c", HIDDEN], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "['django_jobs.E154']" in done.stdout and "left 0" in done.stdout, done.stdout


def _connected(signal) -> bool:
    from django_jobs.metrics.receivers import _UID

    return any(entry[0][0] == _UID for entry in signal.receivers)


def test_receivers_are_connected_only_while_metrics_are_on_and_count_run_jobs():
    from django_jobs import signals

    assert not _connected(signals.job_enqueued)  # no receiver: the signals cost nothing
    before = scrape()
    with override_settings(JOBS=METRICS_ON):
        assert all(_connected(s) for s in (signals.job_enqueued, signals.job_failed))
        later_many(jobs.record, [["a"], ["b"]])
        later(jobs.fail_for_good, [])
        later(jobs.fail, ["once"])
        run_jobs()
        after = scrape()
    assert not _connected(signals.job_succeeded)

    def delta(metric, name):
        labels = {"job_name": f"tests.testapp.jobs.{name}", "queue": "default"}
        return total(after, metric, **labels) - total(before, metric, **labels)

    assert delta("django_jobs_enqueued_total", "record") == 2
    assert delta("django_jobs_succeeded_total", "record") == 2
    assert delta("django_jobs_failed_total", "fail_for_good") == 1
    assert delta("django_jobs_retried_total", "fail") == 1
    assert delta("django_jobs_duration_seconds_count", "record") == 2
