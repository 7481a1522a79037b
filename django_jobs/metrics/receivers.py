"""Counting through django_jobs' signals: receivers connected while metrics are on.

Connected at start-up and whenever ``settings.JOBS`` changes (tests), only when
:func:`~django_jobs.metrics.counters.counting` is true: a signal with no receiver costs
nothing to send, so a project without metrics pays nothing on its hot paths.
"""

from __future__ import annotations

from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .. import signals
from .counters import count_enqueued, count_outcome, counting

_UID = "django_jobs.metrics"


def _enqueued(sender: Any, job: Any, **kwargs: Any) -> None:
    count_enqueued(job.name, job.queue)


def _outcome(kind: str):
    def receiver(sender: Any, job: Any, duration: float | None = None, **kwargs: Any) -> None:
        count_outcome(kind, job.name, job.queue, duration)

    receiver.__name__ = f"count_{kind}"
    return receiver


#: signal → receiver; module-level so that the weak references Django keeps stay alive.
RECEIVERS = (
    (signals.job_enqueued, _enqueued),
    (signals.job_succeeded, _outcome("succeeded")),
    (signals.job_retrying, _outcome("retried")),
    (signals.job_failed, _outcome("failed")),
    (signals.job_cancelled, _outcome("cancelled")),
)


def sync() -> None:
    """Connect the receivers when metrics are on, disconnect them when off."""
    on = counting()
    for signal, counts in RECEIVERS:
        if on:
            signal.connect(counts, dispatch_uid=_UID)
        else:
            signal.disconnect(dispatch_uid=_UID)


@receiver(setting_changed)
def _resync(*, setting: str, **kwargs: Any) -> None:
    # After conf's own receiver (connected first) has dropped the parsed settings.
    if setting == "JOBS":
        sync()
