"""Checks of how jobs are declared: typed parameters (``django_jobs.payloads``), and jobs
declared where workers would not find them (``django_jobs.discovery``)."""

from __future__ import annotations

from django.core.checks import CheckMessage, register
from django.core.exceptions import ImproperlyConfigured
from django.urls import get_resolver

from .. import discovery, payloads, registry
from .base import TAG, _error, _warning


@register(TAG)
def check_typed_parameters(app_configs=None, **kwargs) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for name, definition in sorted(registry.all_jobs().items()):
        try:
            definition.payload  # noqa: B018  (built here, as the first enqueue would)
        except ImproperlyConfigured as exc:
            messages.append(
                _error(
                    180,
                    str(exc),
                    f"Install {payloads.EXTRA} for typed parameters, or annotate the "
                    "parameter with a JSON type (or a type pydantic can validate).",
                    obj=name,
                )
            )
        for parameter in payloads.unresolved(definition):
            messages.append(
                _warning(
                    180,
                    f"The annotation of parameter {parameter!r} of job {name} cannot be "
                    "evaluated: the argument is stored as plain JSON and the job gets it so.",
                    "Import the annotation's names at module level (not only under "
                    "TYPE_CHECKING) for a typed parameter, or silence this warning if plain "
                    "JSON is what the job expects.",
                    obj=name,
                )
            )
    return messages


@register(TAG)
def check_jobs_workers_import(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Jobs declared after Django loaded its apps, including by the URLconf's imports (what
    a web process imports on its first request), which workers would not know."""
    if discovery.in_tests():  # test modules declare jobs after setup, and run them here
        return []
    try:
        get_resolver().url_patterns  # noqa: B018  (imports the views, as a first request would)
    except Exception:
        pass  # a broken URLconf is reported by Django's own checks
    return [
        _error(
            181,
            discovery.not_imported(definition) + ".",
            "Workers import every installed app's jobs module when they start, and what "
            "those import: declare jobs there (or import their module there).",
            obj=name,
        )
        for name, definition in sorted(registry.all_jobs().items())
        if definition.declared_late
    ]
