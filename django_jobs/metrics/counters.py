"""Counters of what happened to jobs, and how long they ran, per job name and queue.

They count in the process where each event happens: ``enqueued`` in the process that
stored the job (a web process, a worker enqueuing from a job, the supervisor's
scheduler), the others in the worker that ran it. Counting is on once ``JOBS["METRICS"]``
is set and prometheus-client is installed; off, no receiver is connected, so the signals
cost what they cost without receivers.

The families live in a registry of their own (:func:`registry`), not prometheus-client's
global one: a project's own exporter does not show them twice beside ours. In
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set, as the supervisor does for its
workers) each process writes its values to files in that directory and the registry is
not read at all: the exporter adds up the files.
"""

from __future__ import annotations

import threading
from typing import Any

from ..conf import jobs_settings
from .installed import AVAILABLE

#: Seconds; jobs run from milliseconds to hours.
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
)  # fmt: skip

#: Outcome kinds counted, each a ``django_jobs_<kind>_total`` counter.
OUTCOMES = ("succeeded", "retried", "failed", "cancelled")

_lock = threading.Lock()
_registry: Any = None
_families: dict[str, Any] | None = None


def counting() -> bool:
    """Metrics are configured (``JOBS["METRICS"]``) and prometheus-client is installed."""
    return AVAILABLE and jobs_settings().metrics is not None


def registry() -> Any:
    """The registry of django_jobs' counters in this process (created on first use)."""
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                from prometheus_client import CollectorRegistry

                _registry = CollectorRegistry(auto_describe=True)
    return _registry


def families() -> dict[str, Any]:
    """The counter and histogram families, created on first use."""
    global _families
    if _families is None:
        target = registry()
        with _lock:
            if _families is None:
                from prometheus_client import Counter, Histogram

                labels = ("job_name", "queue")
                made = {
                    "enqueued": Counter(
                        "django_jobs_enqueued", "Jobs stored.", labels, registry=target
                    )
                }
                for kind, text in (
                    ("succeeded", "Jobs that succeeded."),
                    ("retried", "Attempts that failed and will be retried."),
                    ("failed", "Jobs that failed for good (no attempt left, or discarded)."),
                    ("cancelled", "Jobs cancelled (waiting or while they ran)."),
                ):
                    made[kind] = Counter(f"django_jobs_{kind}", text, labels, registry=target)
                made["duration"] = Histogram(
                    "django_jobs_duration_seconds",
                    "How long attempts ran, whatever their outcome.",
                    labels,
                    buckets=DURATION_BUCKETS,
                    registry=target,
                )
                _families = made
    return _families


def count_enqueued(name: str, queue: str, count: int = 1) -> None:
    families()["enqueued"].labels(name, queue).inc(count)


def count_outcome(kind: str, name: str, queue: str, seconds: float | None = None) -> None:
    """One attempt's end: ``kind`` is one of :data:`OUTCOMES`; ``seconds`` it ran, if it did."""
    found = families()
    found[kind].labels(name, queue).inc()
    if seconds is not None:
        found["duration"].labels(name, queue).observe(seconds)
