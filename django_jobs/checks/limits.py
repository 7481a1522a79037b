"""Checks of concurrency and rate limits: a job with a limit of its own whose queue has
one of the same kind too."""

from __future__ import annotations

from django.core.checks import CheckMessage, register

from .. import registry
from ..conf import jobs_settings
from ..rates import is_rate
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


@register(TAG)
def check_job_and_queue_rates(app_configs=None, **kwargs) -> list[CheckMessage]:
    settings = jobs_settings()
    return [
        _error(
            133,
            f"Job {name} has rate_limit={definition.rate.rate.text!r} and its queue "
            f"{definition.queue!r} has RATE_LIMIT={rate!r}: a job counts against one "
            "rate limit, so enqueueing it there would raise ValueError.",
            "Declare the job on a queue without RATE_LIMIT, or drop one of the two limits.",
            obj=name,
        )
        for name, definition in sorted(registry.all_jobs().items())
        if definition.rate is not None
        and (rate := settings.policy_for(definition.queue).rate_limit) is not None
        and is_rate(rate)  # a bad RATE_LIMIT is E132
    ]
