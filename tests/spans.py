"""OpenTelemetry SDK set-ups for tests: spans kept in memory, or written to a file."""

from __future__ import annotations

import json

_memory = None


def memory_exporter():
    """An in-memory exporter of this process's spans (the SDK provider is set once)."""
    global _memory
    if _memory is None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        _memory = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_memory))
        trace.set_tracer_provider(provider)
    return _memory


def export_spans_to(path: str) -> None:
    """Every span this process ends, appended to ``path`` as one JSON object a line."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

    def one_line(span) -> str:
        return json.dumps(json.loads(span.to_json())) + "\n"

    out = open(path, "a", buffering=1)  # noqa: SIM115  (open for the process's life)
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(ConsoleSpanExporter(out=out, formatter=one_line))
    )
    trace.set_tracer_provider(provider)
