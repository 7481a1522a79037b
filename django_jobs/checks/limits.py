"""Checks of concurrency limits: a job with a limit of its own whose queue has one too."""

from __future__ import annotations

from django.core.checks import CheckMessage, register

from .. import registry
from ..conf import jobs_settings
from .base import TAG, _error


@register(TAG)
def check_job_and_queue_limits(app_configs=None, **kwargs) -> list[CheckMessage]:
    settings = jobs_settings()
    return [
        _error(
            131,
            f"Job {name} has concurrency={definition.concurrency.limit} and its queue "
            f"{definition.queue!r} has CONCURRENCY={limit}: a job counts against one limit, "
            "so enqueueing it there would raise ValueError.",
            "Declare the job on a queue without CONCURRENCY, or drop one of the two limits.",
            obj=name,
        )
        for name, definition in sorted(registry.all_jobs().items())
        if definition.concurrency is not None
        and (limit := settings.policy_for(definition.queue).concurrency) is not None
    ]
