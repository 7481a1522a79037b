"""OpenTelemetry tracing in one process: the enqueuer's context is stored with the job,
and the job runs (``run_jobs``) in a span linked to it. The same with a real worker is in
tests/processes/test_observability.py."""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_jobs import later, later_many
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests.settings import JOBS as TEST_JOBS
from tests.spans import memory_exporter
from tests.testapp import control_jobs, jobs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def spans():
    exporter = memory_exporter()
    exporter.clear()
    yield exporter
    exporter.clear()


def tracer():
    from opentelemetry import trace

    return trace.get_tracer("tests")


def job_spans(exporter, name):
    return [s for s in exporter.get_finished_spans() if s.name == name]


def test_a_job_enqueued_in_a_span_runs_in_a_span_linked_to_it(spans):
    from opentelemetry.trace import SpanKind, StatusCode

    with tracer().start_as_current_span("POST /signup") as request:
        job = later(jobs.record, ["traced"])
    context = request.get_span_context()
    stored = Job.objects.get(pk=job.pk).meta["trace"]
    assert stored["traceparent"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert job.meta == {"trace": stored}
    assert run_jobs().succeeded == 1
    [span] = job_spans(spans, "tests.testapp.jobs.record")
    assert span.kind == SpanKind.CONSUMER
    assert span.parent is None  # a trace of its own, reached through the link
    [link] = span.links
    assert (link.context.trace_id, link.context.span_id) == (context.trace_id, context.span_id)
    assert dict(span.attributes) == {
        "job.name": "tests.testapp.jobs.record",
        "job.id": job.pk,
        "job.queue": "default",
        "job.attempt": 1,
    }
    assert span.status.status_code == StatusCode.UNSET


def test_every_attempt_runs_in_a_span_linked_to_the_enqueuer(spans):
    with tracer().start_as_current_span("request"):
        later(jobs.fail_once, ["twice"])
    run_jobs(include_scheduled=True)
    first, second = job_spans(spans, "tests.testapp.jobs.fail_once")
    assert [first.attributes["job.attempt"], second.attributes["job.attempt"]] == [1, 2]
    # Both attempts link to the same enqueuing span.
    assert first.links[0].context.span_id == second.links[0].context.span_id


def test_a_failure_is_recorded_on_the_span_with_status_error(spans):
    from opentelemetry.trace import StatusCode

    with tracer().start_as_current_span("request"):
        later(jobs.fail, ["kaboom"])
    run_jobs()
    [span] = job_spans(spans, "tests.testapp.jobs.fail")
    assert span.status.status_code == StatusCode.ERROR
    assert span.status.description == "ValueError: kaboom"
    [event] = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"


def test_a_snooze_is_no_error(spans):
    from opentelemetry.trace import StatusCode

    later(control_jobs.snoozing, ["s"])
    run_jobs()
    [span] = job_spans(spans, "tests.testapp.control_jobs.snoozing")
    assert span.status.status_code == StatusCode.UNSET and not span.links


def test_without_a_span_nothing_is_stored_and_the_job_span_has_no_link(spans):
    job = later(jobs.record, ["plain"])
    assert Job.objects.get(pk=job.pk).meta is None
    run_jobs()
    [span] = job_spans(spans, "tests.testapp.jobs.record")
    assert span.links == ()


def test_bulk_and_unique_calls_carry_the_context_too(spans):
    with tracer().start_as_current_span("request") as request:
        many = later_many(jobs.record, [["a"], ["b"]])
        unique = later(control_jobs.unique_record, ["u"])
        duplicate = later(control_jobs.unique_record, ["u"])
    trace_id = f"{request.get_span_context().trace_id:032x}"
    for job in [*many, unique]:
        assert trace_id in Job.objects.get(pk=job.pk).meta["trace"]["traceparent"]
    assert duplicate.created is False and duplicate.pk == unique.pk


def test_a_django_tasks_row_keeps_its_own_meta_beside_the_context(spans):
    from tests.testapp import tasks

    with tracer().start_as_current_span("request"):
        result = tasks.add.enqueue(2, 3)
    meta = Job.objects.get(pk=int(result.id)).meta
    assert meta["backend"] == "default" and "traceparent" in meta["trace"]
    run_jobs()
    [span] = job_spans(spans, Job.objects.get(pk=int(result.id)).name)
    assert len(span.links) == 1


def test_tracing_false_stores_nothing_and_opens_no_span(spans):
    with override_settings(JOBS={**TEST_JOBS, "TRACING": False}):
        with tracer().start_as_current_span("request"):
            job = later(jobs.record, ["off"])
        assert Job.objects.get(pk=job.pk).meta is None
        run_jobs()
    assert job_spans(spans, "tests.testapp.jobs.record") == []


def test_e155_tracing_is_not_a_bool():
    from tests.unit.test_checks import found, only

    assert found(TRACING=False) == [] and found(TRACING=True) == []
    assert "'yes'" in only(found(TRACING="yes"), "django_jobs.E155").msg


def test_without_a_tracer_provider_jobs_open_no_span(spans, monkeypatch):
    from opentelemetry import trace

    from django_jobs import tracing

    assert tracing.enabled()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: trace.ProxyTracerProvider())
    assert not tracing.enabled()  # spans would be no-ops that cost their making
    later(jobs.record, ["unset"])
    run_jobs()
    assert job_spans(spans, "tests.testapp.jobs.record") == []
