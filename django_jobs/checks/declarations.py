"""Checks of how jobs are declared: typed parameters (``django_jobs.payloads``)."""

from __future__ import annotations

from django.core.checks import CheckMessage, register
from django.core.exceptions import ImproperlyConfigured

from .. import payloads, registry
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
