"""OpenTelemetry tracing: the enqueuer's trace context travels with the job, and the job
runs in a span linked to it.

Only when ``opentelemetry-api`` is installed (``pip install django-dbjobs[opentelemetry]``)
and ``JOBS["TRACING"]`` is not False. Without the package this module imports nothing of
it and every function returns at its first line.

* At enqueue, when a span is recording in the caller (a request handled under an
  instrumented Django, a span of the project's own), the configured propagator writes
  its context (W3C ``traceparent``, and ``tracestate``/baggage when present) into the
  row's ``meta`` column under the key ``"trace"`` (``django.tasks`` rows keep their own
  keys beside it). No span, no key: the insert is unchanged.
* In the worker, the job's function runs in a new span (kind CONSUMER, named after the
  job) with a *link* to the enqueuing span, not as its child: a job may run hours later
  and many times, and one request's trace should not stretch over that. Attributes name
  the job, its queue, its attempt and its id; an exception is recorded on the span,
  whose status is then ERROR (a ``Snooze`` is no error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .conf import jobs_settings
from .extras import installed

if TYPE_CHECKING:
    from .storage import ClaimedJob

#: The ``meta`` key of the propagated context.
META_KEY = "trace"

#: opentelemetry-api is importable (looked up once, without importing it).
AVAILABLE = installed("opentelemetry.trace")

_api: Any = None


def _otel() -> Any:
    """The opentelemetry modules this module uses, imported on first use."""
    global _api
    if _api is None:
        from types import SimpleNamespace

        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import (
            Link,
            NoOpTracerProvider,
            ProxyTracerProvider,
            SpanKind,
            Status,
            StatusCode,
        )

        _api = SimpleNamespace(
            context=context, propagate=propagate, trace=trace, Link=Link,
            SpanKind=SpanKind, Status=Status, StatusCode=StatusCode,
            tracer=trace.get_tracer("django_jobs"),
            unset_providers=(NoOpTracerProvider, ProxyTracerProvider),
        )  # fmt: skip
    return _api


def enabled() -> bool:
    """Jobs run in spans: the package is installed, ``JOBS["TRACING"]`` allows it, and
    the process has a tracer provider (without one every span would be a no-op that
    still costs its making)."""
    if not (AVAILABLE and jobs_settings().tracing):
        return False
    api = _otel()
    return not isinstance(api.trace.get_tracer_provider(), api.unset_providers)


def outgoing() -> dict[str, str] | None:
    """The caller's trace context to store with a job, or None (no span, or tracing off).

    Stored whether or not this process has a tracer provider: a context that came in
    with a request is passed on, as the API does without an SDK."""
    if not (AVAILABLE and jobs_settings().tracing):
        return None
    api = _otel()
    if not api.trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    api.propagate.inject(carrier)
    return carrier or None


def incoming(meta: Any) -> Mapping[str, str] | None:
    """The trace context a job's row carries, if any."""
    if not isinstance(meta, dict):
        return None
    carrier = meta.get(META_KEY)
    return carrier if isinstance(carrier, dict) else None


def run_traced(
    claimed: ClaimedJob, run: Callable[[], BaseException | None]
) -> BaseException | None:
    """``run()`` (which returns the job's error, or None) in the job's span when tracing
    is on."""
    if not enabled():
        return run()
    with job_span(claimed) as ended:
        error = run()
        ended(error)
    return error


@contextmanager
def job_span(claimed: ClaimedJob) -> Iterator[Callable[[BaseException | None], None]]:
    """Run the body in the job's span; it calls the yielded function with its error."""
    api = _otel()
    links = []
    carrier = incoming(claimed.meta)
    if carrier is not None:
        linked = api.trace.get_current_span(api.propagate.extract(carrier)).get_span_context()
        if linked.is_valid:
            links.append(api.Link(linked))
    attributes = {
        "job.name": claimed.name,
        "job.id": claimed.id,
        "job.queue": claimed.queue,
        "job.attempt": claimed.attempts,
    }
    # An empty context: the job's span starts a trace of its own whatever the worker's
    # thread holds; the enqueuer is reached through the link.
    with api.tracer.start_as_current_span(
        claimed.name,
        context=api.context.Context(),
        kind=api.SpanKind.CONSUMER,
        links=links,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield lambda error: _ended(api, span, error)


def _ended(api: Any, span: Any, error: BaseException | None) -> None:
    from .exceptions import Snooze

    if error is None or isinstance(error, Snooze):
        return
    span.record_exception(error)
    span.set_status(api.Status(api.StatusCode.ERROR, f"{type(error).__name__}: {error}"))
