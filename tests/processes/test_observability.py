"""Metrics served by a real supervisor, and a real worker's job span linked to the
enqueuing span (OpenTelemetry SDK exporting to a file in the worker)."""

from __future__ import annotations

import json
import os
import signal
import socket
import urllib.request

import pytest

from django_jobs import later, later_many
from tests.conftest import wait_until
from tests.metrics_text import total, value
from tests.processes.conftest import group, live_workers
from tests.spans import memory_exporter
from tests.testapp import jobs

pytestmark = pytest.mark.processes

T = 3  # HEARTBEAT_TIMEOUT of these tests, in seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_a_worker_runs_the_job_in_a_span_linked_to_the_enqueuing_span(jobs_cmd, tmp_path):
    from opentelemetry import trace

    memory_exporter()  # an SDK provider in this process, so the request span is real
    spans_file = tmp_path / "spans.jsonl"
    with trace.get_tracer("tests").start_as_current_span("POST /orders") as request:
        job = later(jobs.record, ["traced"])
    failing = later(jobs.fail_for_good, [])
    jobs_cmd("jobs", "work", workers=[group()], heartbeat=T, DJANGO_JOBS_SPANS_FILE=str(spans_file))

    def finished():
        lines = spans_file.read_text().splitlines() if spans_file.exists() else []
        found = {s["attributes"].get("job.id"): s for s in map(json.loads, lines)}
        return found if {job.pk, failing.pk} <= set(found) else None

    found = wait_until(finished, what="the worker to export both job spans")
    span, failed = found[job.pk], found[failing.pk]
    context = request.get_span_context()
    assert span["name"] == "tests.testapp.jobs.record" and span["kind"] == "SpanKind.CONSUMER"
    assert span["parent_id"] is None
    [link] = span["links"]
    assert link["context"]["trace_id"] == f"0x{context.trace_id:032x}"
    assert link["context"]["span_id"] == f"0x{context.span_id:016x}"
    assert span["attributes"] == {
        "job.name": "tests.testapp.jobs.record", "job.id": job.pk,
        "job.queue": "default", "job.attempt": 1,
    }  # fmt: skip
    assert span["status"]["status_code"] == "UNSET"
    assert failed["links"] == []  # enqueued outside any span
    assert failed["status"]["status_code"] == "ERROR"
    assert failed["events"][0]["attributes"]["exception.type"] == "RuntimeError"


def test_the_supervisor_serves_queue_gauges_read_from_the_table(jobs_cmd, tmp_path):
    port = free_port()
    later_many(jobs.record, [[f"w{i}"] for i in range(7)], queue="slow")  # nobody serves slow
    supervisor = jobs_cmd(
        "jobs", "work", workers=[group(2, QUEUE=["default", "email"])], heartbeat=T,
        DJANGO_JOBS_METRICS=json.dumps({"PORT": port}),
    )  # fmt: skip
    live_workers(2)
    text = wait_until(
        lambda: (t := scrape(port)) and value(t, "django_jobs_live_workers") == 2 and t,
        what="the supervisor to serve metrics with both workers live",
    )
    assert value(text, "django_jobs_database_up") == 1
    assert value(text, "django_jobs_queue_ready", queue="slow") == 7
    assert value(text, "django_jobs_queue_ready", queue="default") == 0
    assert value(text, "django_jobs_queue_workers", queue="default") == 2
    assert value(text, "django_jobs_queue_workers", queue="slow") == 0
    assert 0 <= value(text, "django_jobs_queue_oldest_ready_age_seconds", queue="slow") < 60
    directory = tmp_path / "pids" / f"metrics-{supervisor.pid}"
    assert directory.is_dir()
    supervisor.signal(signal.SIGTERM)
    assert supervisor.wait() == 0
    assert not directory.exists()  # removed on a clean stop
    assert scrape(port) == ""
    assert "metrics on http://127.0.0.1:" in supervisor.output()
    assert total(text, "django_jobs_queue_running") == 0
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") is None


def test_after_a_known_workload_the_supervisor_reports_exactly_its_counts(
    jobs_cmd, tmp_path, client
):
    """100 succeeded (90 + 10 after one retry), 10 retried, 5 failed, on two worker
    processes that are recycled every 30 jobs: the counts of exited workers stay in."""
    from django.test import override_settings

    from tests.settings import JOBS as TEST_JOBS

    port = free_port()
    before = client.get("/jobs-metrics/").content.decode()
    with override_settings(JOBS={**TEST_JOBS, "METRICS": {}}):  # count in this process too
        later_many(jobs.noop, [[] for _ in range(90)])
        later_many(jobs.fail_once, [[f"once-{i}"] for i in range(10)])
        later_many(jobs.fail_for_good, [[] for _ in range(5)])
        later_many(jobs.record, [[f"w{i}"] for i in range(7)], queue="slow")  # unserved
        here = client.get("/jobs-metrics/").content.decode()

    def enqueued(text, name, queue="default"):
        return total(text, "django_jobs_enqueued_total", job_name=name, queue=queue)

    for name, count, queue in (
        ("tests.testapp.jobs.noop", 90, "default"),
        ("tests.testapp.jobs.fail_once", 10, "default"),
        ("tests.testapp.jobs.fail_for_good", 5, "default"),
        ("tests.testapp.jobs.record", 7, "slow"),
    ):
        assert enqueued(here, name, queue) - enqueued(before, name, queue) == count
    supervisor = jobs_cmd(
        "jobs", "work", heartbeat=T,
        workers=[group(2, QUEUE=["default", "email"], MAX_JOBS=30)],
        DJANGO_JOBS_METRICS=json.dumps({"PORT": port}),
    )  # fmt: skip

    def finished():
        text = scrape(port)
        counts = [
            total(text, f"django_jobs_{kind}_total") for kind in ("succeeded", "retried", "failed")
        ]
        return text if counts == [100, 10, 5] else None

    text = wait_until(finished, timeout=120, what="100 succeeded, 10 retried and 5 failed")
    assert "exited to be recycled" in supervisor.output()  # counts of gone workers are kept

    def count(kind, name):
        return value(
            text,
            f"django_jobs_{kind}_total",
            job_name=f"tests.testapp.jobs.{name}",
            queue="default",
        )

    assert count("succeeded", "noop") == 90
    assert count("succeeded", "fail_once") == 10 and count("retried", "fail_once") == 10
    assert count("failed", "fail_for_good") == 5
    assert total(text, "django_jobs_cancelled_total") == 0
    assert total(text, "django_jobs_duration_seconds_count") == 115  # every attempt
    assert total(text, "django_jobs_enqueued_total") == 0  # counted where they were enqueued
    assert value(text, "django_jobs_queue_ready", queue="slow") == 7
    assert value(text, "django_jobs_queue_ready", queue="default") == 0
    assert value(text, "django_jobs_queue_running", queue="default") == 0
    # Nothing is counted twice: a later scrape, with workers idle, says the same.
    again = scrape(port)
    for kind in ("succeeded", "retried", "failed"):
        assert total(again, f"django_jobs_{kind}_total") == total(text, f"django_jobs_{kind}_total")


def test_a_detached_supervisor_keeps_the_counts_of_a_worker_killed_with_sigkill(jobs_cmd):
    """``jobs start``: counts of a worker killed by SIGKILL stay in the totals, its
    replacement adds to them, and ``jobs stop`` removes the directory."""
    from tests.processes.conftest import SETTINGS

    port = free_port()
    env = {"workers": [group(2)], "heartbeat": T, "DJANGO_JOBS_METRICS": json.dumps({"PORT": port})}
    later_many(jobs.noop, [[] for _ in range(20)])
    started = jobs_cmd("jobs", "start", **env)
    assert started.wait(60) == 0, started.output()
    supervisor = int((jobs_cmd.pid_dir / f"{SETTINGS}.pid").read_text())

    def succeeded(count):
        return lambda: total(scrape(port), "django_jobs_succeeded_total") == count

    wait_until(succeeded(20), what="20 jobs counted")
    pids = live_workers(2).values()
    os.kill(next(iter(pids)), signal.SIGKILL)
    wait_until(lambda: len(set(live_workers(2).values()) - set(pids)) == 1, what="a new worker")
    later_many(jobs.noop, [[] for _ in range(10)])
    wait_until(succeeded(30), what="30 jobs counted, the killed worker's included")
    directory = jobs_cmd.pid_dir / f"metrics-{supervisor}"
    assert directory.is_dir()
    stopped = jobs_cmd("jobs", "stop", "--timeout", "30", **env)
    assert stopped.wait(60) == 0, stopped.output()
    assert not directory.exists()
