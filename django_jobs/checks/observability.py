"""Checks of ``JOBS["METRICS"]`` (Prometheus) and ``JOBS["TRACING"]`` (OpenTelemetry):
ids E150–E159."""

from __future__ import annotations

from django.core.checks import CheckMessage, register

from .. import conf
from ..metrics import installed as metrics
from .base import TAG, _closest, _error, _is_int, _jobs_is_a_dict, _raw

EXAMPLE = '"METRICS": {"PORT": 9108}'


@register(TAG)
def check_metrics(app_configs=None, **kwargs) -> list[CheckMessage]:
    if not _jobs_is_a_dict():
        return []
    raw = _raw()
    value = raw.get("METRICS")
    if value is None:
        return []
    if not isinstance(value, dict):
        return [
            _error(
                150,
                f'JOBS["METRICS"] must be a dict or None, not {value!r}.',
                f"None (the default) counts nothing; a dict turns metrics on, e.g. {EXAMPLE} "
                "for the supervisor to serve them on port 9108, or {} for the view alone.",
            )
        ]
    valid = list(conf.METRICS_DEFAULTS)
    errors = [
        _error(
            151,
            f'JOBS["METRICS"] has an unknown key {key!r}.',
            f"{_closest(key, valid)}Keys: {', '.join(valid)}.",
        )
        for key in value
        if key not in conf.METRICS_DEFAULTS
    ]
    port = value.get("PORT")
    if port is not None and not (_is_int(port) and 0 < port < 65536):
        errors.append(
            _error(
                152,
                f'JOBS["METRICS"]["PORT"] must be a TCP port (1 to 65535) or None, not {port!r}.',
                "The supervisor serves /metrics on it; None serves nothing from the "
                "supervisor (mount django_jobs.metrics.metrics_view instead).",
            )
        )
    address = value.get("ADDRESS", conf.METRICS_DEFAULTS["ADDRESS"])
    if not isinstance(address, str) or not address:
        errors.append(
            _error(
                153,
                f'JOBS["METRICS"]["ADDRESS"] must be an address to listen on, not {address!r}.',
                'e.g. "127.0.0.1" (the default: this host only), or "0.0.0.0" for a '
                "Prometheus on another host.",
            )
        )
    if not metrics.AVAILABLE:
        errors.append(
            _error(
                154,
                'JOBS["METRICS"] is set but prometheus-client is not installed: nothing is '
                "counted or served.",
                f"{metrics.INSTALL_HINT}, or remove METRICS.",
            )
        )
    return errors


@register(TAG)
def check_tracing(app_configs=None, **kwargs) -> list[CheckMessage]:
    if not _jobs_is_a_dict():
        return []
    value = _raw().get("TRACING", True)
    if isinstance(value, bool):
        return []
    return [
        _error(
            155,
            f'JOBS["TRACING"] must be True or False, not {value!r}.',
            "True (the default) traces jobs when opentelemetry-api is installed; False never does.",
        )
    ]
